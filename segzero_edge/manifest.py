"""The engine directory's self-description: `manifest.json`.

The runtime reads everything from here and never guesses: precisions, preprocessing
constants, prompt template, special-token ids, and the sha256 of every file. A missing
or altered file, or a format version this package cannot read, is a clear error.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .engine_paths import MissingFile, PathProblem, join_relative, parent_of, resolve_inside
from .manifest_schema import GRAPH_ROLES, SchemaError, component_files, validate
from .onnx_refs import OnnxFormatError, external_refs

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
_CHUNK = 1 << 20
#: Largest manifest.json read (real ones are a few KB).
MAX_MANIFEST_BYTES = 8 << 20


class EngineError(RuntimeError):
    """An engine directory that cannot be used as it is; the message says why and what to do."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _engine_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)


@dataclass(frozen=True)
class Manifest:
    """A parsed, verified manifest. `components` holds each stage's own metadata
    (`reasoner`, `segmenter`, optional `trt`), as its exporter wrote it."""

    root: Path
    data: dict[str, Any]

    @property
    def format_version(self) -> int:
        return int(self.data["format_version"])

    @property
    def components(self) -> dict[str, dict[str, Any]]:
        return self.data["components"]

    def component(self, name: str) -> dict[str, Any]:
        try:
            return self.components[name]
        except KeyError:
            raise EngineError(
                f"{self.root / MANIFEST_NAME} has no '{name}' component (has: {', '.join(self.components)})"
            ) from None

    def path(self, relative: str) -> Path:
        """Real path of a file the manifest lists (refuses files it does not list, and names
        that do not resolve to a regular file inside the directory)."""
        if relative not in self.data["files"]:
            raise EngineError(f"{relative} is not listed in {self.root / MANIFEST_NAME}")
        try:
            return resolve_inside(self.root.resolve(), relative)
        except PathProblem as exc:
            raise EngineError(f"{self.root / MANIFEST_NAME}: {exc}") from None


def answer_format(data: dict[str, Any]) -> str:
    """The answer format a validated manifest's reasoner prompt asks for; manifests written
    before the format was recorded are Seg-Zero's original single-object ones."""
    return data["components"]["reasoner"]["prompt"].get("answer_format", "single")


def engines_answer_format(root: str | Path) -> str:
    """`answer_format` of an engine directory, from its manifest alone (no file is hashed):
    for choosing settings before the engines load. Raises `EngineError` like `read_manifest`."""
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        raise EngineError(f"{path} is missing: not an engine directory (make one with `segzero-edge export`)")
    data = _load_json(path)
    try:
        validate(data)
        reasoner = data["components"]["reasoner"]
    except SchemaError as exc:
        raise _fail(path, f"{exc}: re-export the engines or restore this manifest") from None
    except (KeyError, TypeError):
        raise _fail(path, "has no reasoner component: not a reasoning-segmentation engine directory") from None
    return reasoner["prompt"].get("answer_format", "single")


def write_manifest(root: Path, *, sources: dict[str, str], components: dict[str, dict[str, Any]]) -> Path:
    """Hash every file under `root` and write `root/manifest.json` last."""
    root = Path(root)
    files = {
        p.relative_to(root).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
        for p in _engine_files(root)
    }
    data = {
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "sources": sources,
        "components": components,
        "files": files,
    }
    path = root / MANIFEST_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def _fail(path: Path, message: str) -> EngineError:
    return EngineError(f"{path}: {message}")


def _load_json(path: Path) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise _fail(path, f"is {size} bytes; a manifest is at most {MAX_MANIFEST_BYTES} (not an engine manifest?)")
        return json.loads(path.read_bytes().decode("utf-8"))
    # ValueError covers JSONDecodeError and integers too long to convert; RecursionError, nesting
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _fail(path, f"is not valid JSON: {reason}") from None


def read_manifest(root: Path, *, verify: bool = True) -> Manifest:
    """Read, validate and (by default) verify an engine directory.

    Raises `EngineError` (one line, naming the key or file) when the manifest is missing,
    unreadable or malformed, its format version is unknown, a path it names is not a
    canonical relative path resolving to a regular file inside the directory (symlinks
    included), a file a component uses is not listed, or (with `verify`) a listed file is
    missing or differs from its recorded size and sha256, or a graph's external data is not
    a listed file of the directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise EngineError(f"engine directory not found: {root}")
    real_root = root.resolve()
    path = root / MANIFEST_NAME
    if not path.exists() and not path.is_symlink():
        raise EngineError(f"{path} is missing: not an engine directory (make one with `segzero-edge export`)")
    try:
        resolve_inside(real_root, MANIFEST_NAME)
    except PathProblem as exc:
        raise _fail(path, f"unusable: {exc}") from None
    data = _load_json(path)
    if not isinstance(data, dict) or not {"format_version", "components", "files"} <= set(data):
        raise _fail(path, "lacks format_version/components/files: not a segzero-edge manifest")
    version = data["format_version"]
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise EngineError(
            f"{path} has format version {version!r}; this segzero-edge {__version__} reads version "
            f"{FORMAT_VERSION}: re-export the engines with this version"
        )
    try:
        validate(data)
    except SchemaError as exc:
        raise _fail(path, f"{exc}: re-export the engines or restore this manifest") from None
    manifest = Manifest(root=root, data=data)
    files = data["files"]
    for key, relative in component_files(data["components"]).items():
        if relative not in files:
            raise _fail(path, f"{key} names {relative}, which `files` does not list (so it is never hashed)")
    for relative in files:
        _listed_file(manifest, real_root, relative)
    if verify:
        verify_files(manifest)
    check_graph_refs(manifest)
    return manifest


def _listed_file(manifest: Manifest, real_root: Path, relative: str) -> Path:
    try:
        return resolve_inside(real_root, relative)
    except MissingFile:
        raise EngineError(
            f"engine file missing: {manifest.root / relative} (listed in the manifest); re-export or restore it"
        ) from None
    except PathProblem as exc:
        raise _fail(manifest.root / MANIFEST_NAME, f"files[{relative!r}] refused: {exc}") from None


def verify_files(manifest: Manifest) -> None:
    """Check every listed file exists inside the directory with its recorded size and sha256."""
    real_root = manifest.root.resolve()
    for relative, entry in manifest.data["files"].items():
        real = _listed_file(manifest, real_root, relative)
        if real.stat().st_size != entry["bytes"] or file_sha256(real) != entry["sha256"]:
            raise EngineError(
                f"engine file altered: {manifest.root / relative} does not match its sha256 in the manifest; re-export it"
            )


def check_graph_refs(manifest: Manifest) -> None:
    """Every file ONNX Runtime will open for a component graph (its external data) must be
    a listed file inside the directory, with its byte range inside that file. Checked here,
    before any session exists, whatever onnxruntime version is installed."""
    real_root = manifest.root.resolve()
    files = manifest.data["files"]
    for key, relative in component_files(manifest.components).items():
        if not key.endswith(GRAPH_ROLES):
            continue
        try:
            refs = external_refs(_listed_file(manifest, real_root, relative))
        except (OnnxFormatError, OSError, ValueError) as exc:
            raise EngineError(f"{manifest.root / relative} ({key}) is not a readable ONNX graph: {exc}") from None
        folder = parent_of(relative)
        for ref in refs:
            where = f"{manifest.root / relative}: tensor {ref.tensor!r} external data"
            try:
                if ref.location is None:
                    raise PathProblem("has no location")
                target = join_relative(folder, ref.location)
                if target not in files:
                    raise PathProblem(f"{target} is not listed in the manifest (so it is never hashed)")
                real = resolve_inside(real_root, target)
            except PathProblem as exc:  # MissingFile included: a listed file that is gone
                raise EngineError(f"{where} {ref.location!r} refused: {exc}") from None
            size = real.stat().st_size
            end = ref.offset + (ref.length if ref.length is not None else 0)
            if ref.offset > size or end > size:
                raise EngineError(
                    f"{where} reads bytes {ref.offset}..{end} of {target}, which has {size}: re-export the engine"
                )


def check_plans_match(trt: dict[str, Any], tensorrt_version: str, gpu: str, *, where: Path | str) -> None:
    """Refuse TensorRT plans (the manifest's `trt` component) built for another TensorRT version
    or GPU than this machine's: TensorRT would fail to deserialize them, or run kernels tuned
    for another chip. One `EngineError` line, with the fix."""
    rebuild = f"rebuild them on this machine with `segzero-edge build-plans --engines {where}` (or use provider='cuda')"
    built_version, built_gpu = trt.get("tensorrt"), trt.get("gpu")
    if built_version is None or built_gpu is None:
        raise EngineError(
            f"{where}: the TensorRT plans do not record the TensorRT version and GPU they were built for: {rebuild}"
        )
    if built_version != tensorrt_version:
        raise EngineError(
            f"{where}: the TensorRT plans were built with TensorRT {built_version}, this machine has "
            f"{tensorrt_version} (a plan runs only on the version that built it): {rebuild}"
        )
    if built_gpu != gpu:
        raise EngineError(
            f"{where}: the TensorRT plans were built for GPU {built_gpu!r}, this machine has {gpu!r} "
            f"(plans are tuned to one GPU model): {rebuild}"
        )
