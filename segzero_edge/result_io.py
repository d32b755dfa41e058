"""`Result` to and from JSON (the mask as COCO RLE), and to an overlay PNG: the bodies of
`Result.to_dict`, `Result.from_dict` and `Result.save`."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from .rle import decode, encode


def result_to_dict(result: Any) -> dict[str, Any]:
    """JSON-serialisable: every field but the image, the mask as `{"size", "counts"}` RLE."""
    return {
        "ok": result.ok,
        "query": result.query,
        "error": result.error,
        "bbox": list(result.bbox) if result.bbox else None,
        "points": [list(p) for p in result.points] if result.points else None,
        "score": result.score,
        "mask_area": int(result.mask.sum()) if result.mask is not None else None,
        "mask_rle": encode(result.mask) if result.mask is not None else None,
        "thinking": result.thinking,
        "answer_text": result.answer_text,
        "timings": dict(result.timings),
        "warnings": list(result.warnings),
        "objects": [
            {"bbox": list(o.bbox), "points": [list(p) for p in o.points], "score": o.score,
             "mask_area": int(o.mask.sum()), "mask_rle": encode(o.mask)}
            for o in result.objects
        ],
    }


def result_fields(data: dict[str, Any]) -> dict[str, Any]:
    """`Result(**fields)` arguments from `result_to_dict` output (RLE decoded, tuples restored)."""
    from .pipeline import ObjectResult

    rle = data.get("mask_rle")
    objects = [
        ObjectResult(bbox=tuple(int(v) for v in o["bbox"]), points=tuple(tuple(int(v) for v in p) for p in o["points"]),
                     mask=decode(o["mask_rle"]), score=o.get("score"))
        for o in data.get("objects", [])
    ]
    return {
        "ok": bool(data["ok"]),
        "query": data["query"],
        "error": data.get("error"),
        "mask": decode(rle) if rle is not None else None,
        "bbox": tuple(int(v) for v in data["bbox"]) if data.get("bbox") else None,
        "points": tuple(tuple(int(v) for v in p) for p in data["points"]) if data.get("points") else None,
        "score": data.get("score"),
        "thinking": data.get("thinking", ""),
        "answer_text": data.get("answer_text", ""),
        "timings": dict(data.get("timings", {})),
        "warnings": list(data.get("warnings", [])),
        "objects": objects,
    }


def save_overlay(result: Any, path: str | Path, pixels: np.ndarray | None, *, caption: bool = True) -> Path:
    """Render `result` over `pixels` (RGB uint8 HxWx3) and write it as a PNG, atomically."""
    from .overlay import render_overlay
    from .safe_write import atomic_write_bytes

    if pixels is None:
        raise ValueError("this Result holds no image (read by from_dict?): pass save(path, image=...)")
    buf = io.BytesIO()
    render_overlay(pixels, result, caption=caption).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue(), "Result.save path")
