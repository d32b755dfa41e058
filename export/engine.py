"""Export both models into one self-describing engine directory, atomically.

Everything is written into a sibling temp folder and renamed into place at the very end,
with `manifest.json` written last; an interrupted export never leaves a half directory.

One export per `--out` at a time: a lock file next to it (`.OUT.lock`, `file_lock`) makes a
second concurrent export fail at once (`ExportLocked`). Holding that lock also proves that
any `.OUT.partial-*` (or `.OUT.old-*`) folder beside it was left by a killed export: those
are removed, and reported, before the new export starts.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from segzero_edge.file_lock import LockHeld, exclusive_lock
from segzero_edge.manifest import Manifest, write_manifest
from segzero_edge.prompts import check_answer_format

logger = logging.getLogger("segzero_edge.export")

#: Raised when another live process is exporting to the same --out.
ExportLocked = LockHeld

ReasonerPrecision = Literal["fp32", "fp16", "int8", "int4"]
AnswerFormat = Literal["single", "multi"]
SegmenterPrecision = Literal["fp32", "fp16", "int8"]
DecoderLayout = Literal["fused", "portable"]


@dataclass(frozen=True)
class ExportConfig:
    """What `segzero-edge export` builds."""

    reasoner: str = field(metadata={"help": "reasoner source: a local HF directory or a Hub id"})
    segmenter: str = field(metadata={
        "help": "segmenter source: a local HF directory or a Hub id (SAM2), a checkpoint file from Meta's sam2 "
                "repository (sam2.1_hiera_tiny.pt …, converted on load), or an engine directory whose "
                "verified segmenter graphs are reused as they are (re-export a fine-tuned reasoner only)"})
    out: Path = field(metadata={"help": "engine directory to create"})
    reasoner_precision: ReasonerPrecision = field(default="int4", metadata={"help": "reasoner graph precision"})
    segmenter_precision: SegmenterPrecision = field(default="fp32", metadata={"help": "segmenter graph precision"})
    block_size: int = field(default=32, metadata={"help": "int4 quantization block size (power of two ≥ 16)"})
    decoder_layout: DecoderLayout = field(
        default="fused",
        metadata={
            "help": "reasoner decoder graph: fused (onnxruntime contrib ops, device-resident cache; fastest) "
            "or portable (standard ONNX ops only)"
        },
    )
    tensorrt: bool = field(default=False, metadata={"help": "also build TensorRT plans (needs tensorrt and a GPU)"})
    force: bool = field(default=False, metadata={"help": "replace an existing output directory"})
    answer_format: AnswerFormat = field(
        default="single",
        metadata={
            "help": "the answers the reasoner was trained to give: single (Seg-Zero's original box + two points) "
            "or multi (its current VisionReasoner list of objects); recorded in the manifest with its prompt "
            "and parser, and the runtime follows it"
        },
    )

    def __post_init__(self) -> None:
        check_answer_format(self.answer_format)
        if self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a power of two ≥ 16, got {self.block_size}")
        if self.tensorrt and self.segmenter_precision == "int8":
            # TensorRT has no kernels for onnxruntime's dynamic-int8 ops; plans are built fp16.
            raise ValueError("--tensorrt needs --segmenter-precision fp32 or fp16 (TensorRT builds fp16 plans itself)")


def _chmod_like_mkdir(path: Path) -> None:
    # mkdtemp makes the folder 0700; an engine directory should get the usual umask permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o777 & ~umask)


def stale_partials(out: Path) -> list[Path]:
    """Staging and swap folders of earlier exports to `out` (stale once the lock is held)."""
    return sorted(
        p for pattern in (f".{out.name}.partial-*", f".{out.name}.old-*") for p in out.parent.glob(pattern) if p.is_dir()
    )


def export_engines(config: ExportConfig, *, progress: bool = True) -> Path:
    """Build `config.out` with reasoner/, segmenter/, optional trt/, and manifest.json.

    Raises `ExportLocked` when another process is exporting to the same folder, and
    `FileExistsError` when it exists without `force`; both before any model work.
    """
    out = Path(config.out)
    if out.exists() and not config.force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out.parent / f".{out.name}.lock", f"--out {out}"):
        for stale in stale_partials(out):
            shutil.rmtree(stale, ignore_errors=True)
            logger.warning("removed %s, left by an export that was killed", stale)
        if out.exists() and not config.force:  # an export that held the lock finished meanwhile
            raise FileExistsError(f"{out} exists; pass --force to replace it")
        return _export_locked(config, out, progress)


def _export_locked(config: ExportConfig, out: Path, progress: bool) -> Path:
    from segzero_edge.export.reasoner import export_reasoner
    from segzero_edge.export.segmenter import export_segmenter

    reused = reused_segmenter(config.segmenter)  # a tampered engine dir is refused before any model work
    if reused is None:
        from segzero_edge.models.segmenter import check_source

        check_source(config.segmenter)  # so is a bad checkpoint file (MetaCheckpointError)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        components = {
            "reasoner": export_reasoner(
                config.reasoner, staging / "reasoner", precision=config.reasoner_precision,
                block_size=config.block_size, progress=progress, answer_format=config.answer_format,
                decoder_layout=config.decoder_layout,
            ),
        }
        sources = {"reasoner": config.reasoner}
        if reused is None:
            components["segmenter"] = export_segmenter(
                config.segmenter, staging / "segmenter", precision=config.segmenter_precision
            )
            sources["segmenter"] = config.segmenter
            if Path(config.segmenter).expanduser().is_file():
                # a checkpoint file's path says nothing about its content: record what was read
                sources["segmenter_sha256"] = _file_sha256(Path(config.segmenter).expanduser())
        else:
            components["segmenter"], sources["segmenter"] = copy_segmenter(reused, staging / "segmenter")
        if config.tensorrt:
            from segzero_edge.export.plans import build_engine_plans

            components["trt"] = build_engine_plans(staging, components)
        _chmod_like_mkdir(staging)
        write_manifest(staging, sources=sources, components=components)
        if out.exists():  # --force: swap the new directory in, then drop the old one
            trash = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, trash)
            os.replace(staging, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def reused_segmenter(source: str) -> Manifest | None:
    """The verified manifest of `source` when it is an engine directory (its segmenter graphs
    are then reused as they are), else None (a checkpoint to export). An engine directory that
    fails verification raises EngineError: a tampered segmenter is never copied."""
    from segzero_edge.manifest import MANIFEST_NAME, read_manifest

    if not (Path(source) / MANIFEST_NAME).is_file():
        return None
    manifest = read_manifest(Path(source))
    manifest.component("segmenter")  # EngineError when the directory has no segmenter
    return manifest


def copy_segmenter(manifest: Manifest, dst: Path) -> tuple[dict, str]:
    """Copy the segmenter files a verified manifest lists into `dst`; returns (its component
    metadata, the source to record: the original checkpoint, via this engine directory)."""
    files = [name for name in manifest.data["files"] if name.startswith("segmenter/")]
    if not files:
        from segzero_edge.manifest import EngineError

        raise EngineError(f"{manifest.root}: the manifest lists no segmenter/ files")
    for name in files:
        target = dst / name.removeprefix("segmenter/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(manifest.path(name), target)
    original = manifest.data.get("sources", {}).get("segmenter", "unknown")
    return dict(manifest.component("segmenter")), f"{original} (segmenter graphs reused from {manifest.root})"

