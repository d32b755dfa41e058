"""segzero-edge: Seg-Zero reasoning segmentation on the edge.

The top-level package holds the stage-independent contracts (prompts, answer parsing,
geometry, rewards, metrics, the pipeline, the engine manifest). It imports only numpy,
pillow and the standard library, so the lean runtime stays torch-free.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

__all__ = ["__version__", "default_engines"]


def default_engines() -> Path:
    """Return the engine directory shipped inside the package (the embedded default).

    Raises FileNotFoundError with a fix when this install carries no shipped engines.
    """
    path = Path(__file__).resolve().parent / "assets" / "engines"
    if not (path / "manifest.json").is_file():
        raise FileNotFoundError(
            f"no shipped engines at {path}: this install has no embedded default; "
            "pass --engines DIR (an export from `segzero-edge export`)"
        )
    return path
