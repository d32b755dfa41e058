"""Parse reasoner output into a validated `Answer`, following Seg-Zero's evaluation parser.

Seg-Zero takes the first `{[^}]+}` in the text, `json.loads` it, uses the first key that
contains "bbox" and the first two keys that contain "points", and rescales every value
from 840 space with `round(int(v) * factor)`. Where Seg-Zero would crash or produce
garbage (a 4-character string taken as a box, say), this module raises `AnswerError`
with the reason instead: it never returns garbage.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from .prompts import REASONER_SIZE

_JSON_RE = re.compile(r"{[^}]+}")
_THINK_RE = re.compile(r"<think>([^<]+)</think>")

Box = tuple[int, int, int, int]
Point = tuple[int, int]


class AnswerError(ValueError):
    """The model output holds no usable answer; the message says why."""


@dataclass(frozen=True)
class Answer:
    """A parsed answer: bbox `(x1, y1, x2, y2)` and two `(x, y)` points, in one pixel space."""

    bbox: Box
    points: tuple[Point, Point]
    thinking: str = ""

    def rescale(self, width: int, height: int, source_size: int = REASONER_SIZE) -> Answer:
        """Map from `source_size`² space to a W×H image with Seg-Zero's `round(v * W/840)`."""
        if width <= 0 or height <= 0:
            raise AnswerError(f"cannot rescale to a {width}x{height} image")
        # Seg-Zero computes the factor first, then multiplies: keep that order for identical rounding.
        fx, fy = width / source_size, height / source_size
        x1, y1, x2, y2 = self.bbox
        bbox = (round(x1 * fx), round(y1 * fy), round(x2 * fx), round(y2 * fy))
        points = tuple((round(x * fx), round(y * fy)) for x, y in self.points)
        return Answer(bbox=bbox, points=points, thinking=self.thinking)  # type: ignore[arg-type]


def extract_thinking(text: str) -> str:
    """The first `<think>…</think>` body without '<' inside, as Seg-Zero extracts it; '' if none."""
    match = _THINK_RE.search(text)
    return match.group(1) if match else ""


def _to_int(value: object, where: str) -> int:
    # Seg-Zero applies int() to each coordinate: ints, floats (truncated) and numeric
    # strings pass. Booleans and non-finite floats are garbage, not coordinates.
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise AnswerError(f"{where} must be numeric, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise AnswerError(f"{where} must be finite, got {value!r}")
    try:
        return int(value)
    except ValueError as exc:
        raise AnswerError(f"{where} must be numeric, got {value!r}") from exc


def _coords(value: object, key: str, need: int) -> list[int]:
    if not isinstance(value, list):
        raise AnswerError(f"{key!r} must be a list of {need} numbers, got {value!r}")
    # Seg-Zero reads bbox only when len == 4; for points it reads [0] and [1].
    if (need == 4 and len(value) != 4) or len(value) < need:
        raise AnswerError(f"{key!r} must hold {need} numbers, got {len(value)}: {value!r}")
    return [_to_int(v, f"{key}[{i}]") for i, v in enumerate(value[:need])]


def parse_answer(text: str) -> Answer:
    """Parse model output into an `Answer` in the model's own (840) space.

    Raises `AnswerError` when there is no JSON object, it does not parse, a key is
    missing, a value has the wrong length, or a coordinate is not numeric.
    """
    if not isinstance(text, str):
        raise AnswerError(f"model output must be a string, got {type(text).__name__}")
    match = _JSON_RE.search(text)
    if match is None:
        raise AnswerError("no JSON object in the model output")
    try:
        data = json.loads(match.group(0))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise AnswerError(f"answer JSON does not parse: {exc}") from exc
    if not isinstance(data, dict):
        raise AnswerError("answer JSON is not an object")
    bbox_key = next((k for k in data if "bbox" in k.lower()), None)
    if bbox_key is None:
        raise AnswerError(f"no key containing 'bbox' in the answer (keys: {list(data)})")
    points_keys = [k for k in data if "points" in k.lower()][:2]
    if len(points_keys) < 2:
        raise AnswerError(f"need two keys containing 'points' in the answer (keys: {list(data)})")
    x1, y1, x2, y2 = _coords(data[bbox_key], bbox_key, 4)
    p1 = _coords(data[points_keys[0]], points_keys[0], 2)
    p2 = _coords(data[points_keys[1]], points_keys[1], 2)
    return Answer(
        bbox=(x1, y1, x2, y2),
        points=((p1[0], p1[1]), (p2[0], p2[1])),
        thinking=extract_thinking(text),
    )


def parse_and_rescale(text: str, width: int, height: int) -> Answer:
    """`parse_answer` then `rescale` to a W×H original image."""
    return parse_answer(text).rescale(width, height)
