"""Tiny random-weight checkpoints so no test or benchmark needs the Hugging Face Hub.

`write_tiny_models(out)` writes `out/reasoner` (Qwen2.5-VL architecture with the project's
own small tokenizer and processor files) and `out/segmenter` (transformers SAM2); the CLI
`python -m segzero_edge.testing.tiny OUT` does the same. `cached_tiny_models()` builds them
once per machine under a directory keyed by the builder source, library versions and seed.

Importing this package is cheap and torch-free; torch and transformers load inside the
builder functions.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segzero_edge.testing.tokenizer import build_tokenizer, write_tokenizer

if TYPE_CHECKING:
    from transformers import Qwen2_5_VLConfig, Sam2Config

__all__ = [
    "TinyModels",
    "build_tiny_reasoner",
    "build_tiny_segmenter",
    "build_tokenizer",
    "cache_root",
    "cached_tiny_models",
    "tiny_reasoner_config",
    "tiny_segmenter_config",
    "write_tiny_models",
    "write_tokenizer",
]

CACHE_ENV = "SEGZERO_EDGE_CACHE"  # overrides the cache root (default ~/.cache/segzero-edge)


@dataclass(frozen=True)
class TinyModels:
    """Paths of a tiny checkpoint pair: Hugging Face model directories."""

    reasoner: Path
    segmenter: Path


# The builders live in `tiny` and are imported on call: importing `tiny` here would make
# `python -m segzero_edge.testing.tiny` warn that the module was imported before it ran.


def tiny_reasoner_config(**overrides: Any) -> Qwen2_5_VLConfig:
    """Tiny `Qwen2_5_VLConfig` (see `segzero_edge.testing.tiny.tiny_reasoner_config`)."""
    from segzero_edge.testing import tiny

    return tiny.tiny_reasoner_config(**overrides)


def tiny_segmenter_config(**overrides: Any) -> Sam2Config:
    """Tiny `Sam2Config` (see `segzero_edge.testing.tiny.tiny_segmenter_config`)."""
    from segzero_edge.testing import tiny

    return tiny.tiny_segmenter_config(**overrides)


def build_tiny_reasoner(out_dir: Path, seed: int = 0, **config_overrides: Any) -> Path:
    """Save a tiny Qwen2.5-VL reasoner (safetensors + tokenizer + processor files) to `out_dir`."""
    from segzero_edge.testing import tiny

    return tiny.build_tiny_reasoner(out_dir, seed, **config_overrides)


def build_tiny_segmenter(out_dir: Path, seed: int = 0, **config_overrides: Any) -> Path:
    """Save a tiny SAM2 segmenter (safetensors) to `out_dir`."""
    from segzero_edge.testing import tiny

    return tiny.build_tiny_segmenter(out_dir, seed, **config_overrides)


def write_tiny_models(out: Path, seed: int = 0) -> TinyModels:
    """Write `out/reasoner` and `out/segmenter`; returns `TinyModels(reasoner, segmenter)`."""
    from segzero_edge.testing import tiny

    return tiny.write_tiny_models(out, seed)


def cache_root() -> Path:
    """`$SEGZERO_EDGE_CACHE`, else `~/.cache/segzero-edge`."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "segzero-edge"


def _cache_key(seed: int) -> str:
    """Hash of the builder sources, the libraries that shape the files, and the seed."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("tokenizer.py", "tiny.py"):
        h.update((here / name).read_bytes())
    for dist in ("torch", "transformers", "tokenizers", "safetensors"):
        try:
            h.update(f"{dist}={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{dist}=missing".encode())
    h.update(f"seed={seed}".encode())
    return h.hexdigest()[:16]


def cached_tiny_models(seed: int = 0) -> TinyModels:
    """Tiny models from the on-disk cache, built on first use.

    Built in a temporary sibling directory and renamed into place, so concurrent test
    workers never see a half-written checkpoint; the loser of a rename race discards its copy.
    """
    final = cache_root() / f"tiny-{_cache_key(seed)}"
    models = TinyModels(reasoner=final / "reasoner", segmenter=final / "segmenter")
    if _complete(models):
        return models
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        write_tiny_models(tmp, seed=seed)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like ~/.cache/huggingface
        try:
            os.rename(tmp, final)
        except OSError as e:
            if not _complete(models):  # not a lost race with another worker
                raise RuntimeError(
                    f"cannot move the tiny models into {final} ({e}); delete that directory and retry"
                ) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return models


def _complete(models: TinyModels) -> bool:
    return all(
        (d / name).is_file()
        for d in (models.reasoner, models.segmenter)
        for name in ("config.json", "model.safetensors")
    )
