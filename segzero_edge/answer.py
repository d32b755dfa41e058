"""Parse reasoner output into a validated answer, following Seg-Zero's evaluation parsers.

Single-object format (`parse_answer` → `Answer`): Seg-Zero takes the first `{[^}]+}` in
the text, `json.loads` it, uses the first key that contains "bbox" and the first two keys
that contain "points", and rescales every value from 840 space with `round(int(v) * factor)`.

Multi-object format (`parse_multi_answer` → `MultiAnswer`): Seg-Zero takes the first
`<answer>\\s*(.*?)\\s*</answer>` (DOTALL), `json.loads` it into a list of
`{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}` and rescales every value with
`int(v * factor + 0.5)` (no `int()` first, unlike the single format). An empty list is a
valid answer: no object.

Where Seg-Zero would crash or produce garbage (a 4-character string taken as a box, say),
this module raises `AnswerError` with the reason instead: it never returns garbage.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from .prompts import REASONER_SIZE

_JSON_RE = re.compile(r"{[^}]+}")
_THINK_RE = re.compile(r"<think>([^<]+)</think>")
_MULTI_ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)

Box = tuple[int, int, int, int]
Point = tuple[int, int]
Number = int | float


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


# --- the multi-object (VisionReasoner) format ------------------------------------------------


@dataclass(frozen=True)
class ObjectAnswer:
    """One object of a multi-object answer: box `(x1, y1, x2, y2)` and one `(x, y)` point.

    Values are as the model wrote them (ints or floats, 840 space) until `rescale`, which
    gives ints in image pixels.
    """

    bbox: tuple[Number, Number, Number, Number]
    point: tuple[Number, Number]


@dataclass(frozen=True)
class MultiAnswer:
    """A parsed multi-object answer: zero or more objects, in one pixel space."""

    objects: tuple[ObjectAnswer, ...]
    thinking: str = ""

    def rescale(self, width: int, height: int, source_size: int = REASONER_SIZE) -> MultiAnswer:
        """Map to a W×H image with Seg-Zero's `int(v * W/840 + 0.5)` (truncation toward 0)."""
        if width <= 0 or height <= 0:
            raise AnswerError(f"cannot rescale to a {width}x{height} image")
        fx, fy = width / source_size, height / source_size

        def scale(v: Number, f: float, where: str) -> int:
            try:
                return int(v * f + 0.5)
            except OverflowError as exc:
                raise AnswerError(f"{where} = {v!r} is too large to rescale") from exc

        objects = []
        for i, obj in enumerate(self.objects):
            x1, y1, x2, y2 = obj.bbox
            bbox = tuple(scale(v, f, f"object {i} bbox_2d") for v, f in ((x1, fx), (y1, fy), (x2, fx), (y2, fy)))
            point = (scale(obj.point[0], fx, f"object {i} point_2d"), scale(obj.point[1], fy, f"object {i} point_2d"))
            objects.append(ObjectAnswer(bbox=bbox, point=point))  # type: ignore[arg-type]
        return MultiAnswer(objects=tuple(objects), thinking=self.thinking)


def _number(value: object, where: str) -> Number:
    # Seg-Zero computes `v * factor + 0.5`: strings fail there, non-finite floats fail in int().
    # Booleans would pass (True * f) but are garbage, as in the single-object parser.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AnswerError(f"{where} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise AnswerError(f"{where} must be finite, got {value!r}")
    return value


def _multi_coords(item: dict, key: str, need: int, index: int) -> list[Number]:
    if key not in item:
        raise AnswerError(f"object {index} has no {key!r} (keys: {list(item)})")
    value = item[key]
    # Seg-Zero reads indices 0..need-1 only: a longer list passes, a shorter one fails.
    if not isinstance(value, list) or len(value) < need:
        raise AnswerError(f"object {index} {key!r} must be a list of {need} numbers, got {value!r}")
    return [_number(v, f"object {index} {key}[{j}]") for j, v in enumerate(value[:need])]


def parse_multi_answer(text: str) -> MultiAnswer:
    """Parse a multi-object answer into a `MultiAnswer` in the model's own (840) space.

    Raises `AnswerError` when there is no `<answer>` block, its content does not parse, it
    is not a list of objects with `bbox_2d` (4 numbers) and `point_2d` (2 numbers), or a
    coordinate is not a finite number. An empty list is no object, not an error; so is an
    empty JSON object or string, which Seg-Zero's comprehension also reads as no object.
    """
    if not isinstance(text, str):
        raise AnswerError(f"model output must be a string, got {type(text).__name__}")
    match = _MULTI_ANSWER_RE.search(text)
    if match is None:
        raise AnswerError("no <answer>...</answer> block in the model output")
    try:
        data = json.loads(match.group(1))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise AnswerError(f"answer JSON does not parse: {exc}") from exc
    if isinstance(data, (dict, str)) and not data:
        data = []
    if not isinstance(data, list):
        raise AnswerError(f"answer JSON must be a list of objects, got {type(data).__name__}: {str(data)[:80]}")
    objects = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise AnswerError(f"object {i} must be a JSON object, got {item!r}")
        x1, y1, x2, y2 = _multi_coords(item, "bbox_2d", 4, i)
        px, py = _multi_coords(item, "point_2d", 2, i)
        objects.append(ObjectAnswer(bbox=(x1, y1, x2, y2), point=(px, py)))
    return MultiAnswer(objects=tuple(objects), thinking=extract_thinking(text))
