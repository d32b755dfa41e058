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

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
_CHUNK = 1 << 20


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
        """Absolute path of a file the manifest lists (refuses files it does not list)."""
        if relative not in self.data["files"]:
            raise EngineError(f"{relative} is not listed in {self.root / MANIFEST_NAME}")
        return self.root / relative


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


def read_manifest(root: Path, *, verify: bool = True) -> Manifest:
    """Read and (by default) verify an engine directory.

    Raises `EngineError` when the manifest is missing or unreadable, its format version is
    unknown, or a listed file is missing or has a different sha256.
    """
    root = Path(root)
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise EngineError(f"engine directory not found: {root}")
    if not path.is_file():
        raise EngineError(f"{path} is missing: not an engine directory (make one with `segzero-edge export`)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not {"format_version", "components", "files"} <= set(data):
        raise EngineError(f"{path} lacks format_version/components/files: not a segzero-edge manifest")
    version = data["format_version"]
    if version != FORMAT_VERSION:
        raise EngineError(
            f"{path} has format version {version!r}; this segzero-edge {__version__} reads version "
            f"{FORMAT_VERSION}: re-export the engines with this version"
        )
    manifest = Manifest(root=root, data=data)
    if verify:
        verify_files(manifest)
    return manifest


def verify_files(manifest: Manifest) -> None:
    """Check every listed file exists with its recorded size and sha256."""
    for relative, entry in manifest.data["files"].items():
        path = manifest.root / relative
        if not path.is_file():
            raise EngineError(f"engine file missing: {path} (listed in the manifest); re-export or restore it")
        if path.stat().st_size != entry["bytes"] or file_sha256(path) != entry["sha256"]:
            raise EngineError(f"engine file altered: {path} does not match its sha256 in the manifest; re-export it")
