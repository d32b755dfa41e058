"""Build TensorRT plans into an existing engine directory, on the device that will run them
(`segzero-edge build-plans`). Needs tensorrt and libcudart; no torch, no source models: the
ONNX graphs already in the directory are the input.

Atomic: the plans go into a new folder `trt/build-<time>-<id>/`, which the current manifest
does not name; the manifest is then replaced in one `os.replace` with the new plans listed
(sha256, size), the TensorRT version and the GPU name. Only after that are the plans of earlier
builds removed. A build that fails or is killed leaves the directory as it was (the next run
removes its unlisted folder). A lock beside the directory (the one `export` takes) keeps a
second build or an export out meanwhile.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segzero_edge.file_lock import exclusive_lock
from segzero_edge.manifest import MANIFEST_NAME, EngineError, file_sha256, read_manifest
from segzero_edge.manifest_schema import SchemaError, validate

logger = logging.getLogger("segzero_edge.export")

TRT_DIR = "trt"
#: builder(root, components, *, plan_dir, fp16, workspace_gib, device_id) -> the manifest's
#: `trt` component, plan names relative to plan_dir (`export.plans.build_engine_plans`).
PlanBuilder = Callable[..., dict[str, Any]]


def _default_builder(root: Path, components: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    from segzero_edge.export.plans import build_engine_plans

    return build_engine_plans(root, components, **kwargs)


def _write_manifest_atomically(root: Path, data: dict[str, Any]) -> None:
    path = root / MANIFEST_NAME
    tmp = root / f".{MANIFEST_NAME}.{secrets.token_hex(6)}.tmp"
    try:
        with open(tmp, "w") as handle:
            handle.write(json.dumps(data, indent=2) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def build_plans_in_place(
    root: str | Path,
    *,
    fp16: bool = False,
    workspace_gib: float = 4.0,
    device_id: int = 0,
    builder: PlanBuilder | None = None,
) -> dict[str, Any]:
    """Build the plans of the engine directory `root` and list them in its manifest; returns
    the new `trt` component. Raises `EngineError` for a directory that does not verify or has
    no segmenter, `LockHeld` while another build or export holds it."""
    root = Path(root)
    if not workspace_gib > 0:
        raise ValueError(f"workspace_gib must be > 0, got {workspace_gib}")
    build = builder or _default_builder
    if not root.is_dir():
        raise EngineError(f"engine directory not found: {root}")
    with exclusive_lock(root.parent / f".{root.name}.lock", f"--engines {root}"):
        manifest = read_manifest(root)  # every file verified before anything is built from it
        if "segmenter" not in manifest.components:
            raise EngineError(f"{root}: the manifest has no segmenter component, so there is nothing to build plans for")
        trt_root = root / TRT_DIR
        for stale in sorted(trt_root.glob("build-*")) if trt_root.is_dir() else []:
            if not any(name.startswith(f"{TRT_DIR}/{stale.name}/") for name in manifest.data["files"]):
                shutil.rmtree(stale, ignore_errors=True)
                logger.warning("removed %s, left by a build that did not finish", stale)
        build_id = f"build-{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
        plan_dir = trt_root / build_id
        plan_dir.mkdir(parents=True)
        try:
            component = build(
                root, manifest.components, plan_dir=plan_dir, fp16=fp16, workspace_gib=workspace_gib, device_id=device_id
            )
            data = _with_plans(manifest.data, component, root, plan_dir, build_id)
            _write_manifest_atomically(root, data)  # the commit point
        except BaseException:
            shutil.rmtree(plan_dir, ignore_errors=True)
            raise
        _remove_unlisted(trt_root, data["files"])
        return data["components"][TRT_DIR]


def _with_plans(
    old: dict[str, Any], component: dict[str, Any], root: Path, plan_dir: Path, build_id: str
) -> dict[str, Any]:
    """The new manifest data: old `trt/` files and component replaced by this build's."""
    for key in ("tensorrt", "gpu"):
        if not isinstance(component.get(key), str):
            raise EngineError(f"the plan builder returned no {key!r} (got {component!r}): the runtime needs it")
    data = copy.deepcopy(old)
    files = {k: v for k, v in data["files"].items() if not k.startswith(f"{TRT_DIR}/")}
    for path in sorted(p for p in plan_dir.rglob("*") if p.is_file()):
        files[path.relative_to(root).as_posix()] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    new = dict(component)
    for name, entry in component.items():
        if isinstance(entry, dict):  # a component's plans: file roles get the build folder
            new[name] = {
                role: f"{build_id}/{value}" if role in ("encoder", "decoder") else value for role, value in entry.items()
            }
    new["built"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    data["components"][TRT_DIR] = new
    data["files"] = files
    try:
        validate(data)
    except SchemaError as exc:
        raise EngineError(f"the new manifest would not validate: {exc}") from None
    for entry in new.values():
        if isinstance(entry, dict):
            for role in ("encoder", "decoder"):
                if role in entry and f"{TRT_DIR}/{entry[role]}" not in files:
                    raise EngineError(f"the builder named plan {entry[role]!r}, which it did not write in {plan_dir}")
    return data


def _remove_unlisted(trt_root: Path, files: dict[str, Any]) -> None:
    """Plans of earlier builds (and flat plans from `export --tensorrt`) the manifest no longer lists."""
    for path in sorted(trt_root.iterdir()):
        relative = f"{TRT_DIR}/{path.name}"
        if path.is_dir() and not any(name.startswith(relative + "/") for name in files):
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and relative not in files:
            path.unlink(missing_ok=True)
