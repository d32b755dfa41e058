"""The one chain from (image, query) to a mask, written once for every back end.

    prompt → reasoner.generate → parse → rescale 840 → W×H → segmenter.decode → best mask

Back ends plug in through two small protocols: the PyTorch reference
(`segzero_edge.models`) and the torch-free runtime (`segzero_edge.runtime`) both do.

Two answer formats (`segzero_edge.prompts.ANSWER_FORMATS`):
- `single`: one box + two points → one SAM2 call → the best-scored mask;
- `multi` (Seg-Zero's current release): a list of objects; each object's box + its one
  point (label 1) → one SAM2 call on the shared image embedding → its best-scored mask;
  the result mask is the union, and an empty list is a valid answer with an empty mask.

The reasoner renders the prompt, so it owns the format: a reasoner may declare
`answer_format` ("single" | "multi"), and the pipeline parses that format. One that
declares nothing (the runtime until its manifest records the format) is taken as single
unless the pipeline is told otherwise.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .answer import AnswerError, parse_answer, parse_multi_answer
from .geometry import clip_box, clip_point, is_degenerate
from .images import ImageLike, ImageLimits, load_image
from .prompts import check_answer_format
from .stopping import RepetitionStop

#: What the pipeline may pass to `Reasoner.generate` beyond (encoded, query), when it names them.
GENERATE_CONTROLS = ("on_token", "max_time_s", "repetition_stop")

#: Longest query accepted, in tokens of the question itself (Seg-Zero's template adds ~100
#: tokens and the image its own); longer ones are refused, never truncated. Configurable:
#: `ReasoningPipeline(max_query_tokens=)` / `from_dir(max_query_tokens=)`.
MAX_QUERY_TOKENS = 256
#: A query above this many UTF-8 bytes per allowed token is refused before it is tokenised,
#: which bounds the tokenizer's own work (a byte-level BPE token covers at least one byte;
#: real text averages 3-5 bytes a token).
BYTES_PER_TOKEN = 32


@dataclass(frozen=True)
class Generation:
    """What a reasoner returns for one query: the text plus its own stage timings."""

    text: str
    prefill_ms: float = 0.0
    decode_ms: float = 0.0
    tokens: int = 0
    #: why decoding was cut early (a time budget, a repetition stop); None when it ended
    #: normally (a stop token or max_new_tokens). `text` is then the partial answer.
    stop_reason: str | None = None


@runtime_checkable
class Reasoner(Protocol):
    """A vision-language model that answers Seg-Zero prompts."""

    def encode_image(self, image: np.ndarray) -> Any:
        """Prepare an RGB uint8 HxWx3 image once (resize to 840², vision features where the
        back end can cache them); the result is reusable across queries."""
        ...

    def generate(self, encoded: Any, query: str) -> Generation:
        """Answer one query about an encoded image with the Seg-Zero prompt.

        A back end may also take the keywords `on_token(token_id, text_so_far)`,
        `max_time_s` and `repetition_stop` (`segzero_edge.stopping`); the pipeline passes
        them only to a `generate` that names them."""
        ...


@runtime_checkable
class Segmenter(Protocol):
    """A promptable segmenter with SAM2's box + points interface."""

    def encode(self, image: np.ndarray) -> Any:
        """Image embedding of an RGB uint8 HxWx3 image, reusable across prompts."""
        ...

    def decode(
        self, embedding: Any, box: Sequence[int], points: Sequence[Sequence[int]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Multimask output for a box and positive points in original-image pixels:
        masks [K, H, W] bool at the original size and predicted IoU scores [K] float32."""
        ...


@dataclass
class ObjectResult:
    """One segmented object: the prompt SAM2 got (clipped box, points) and its best mask."""

    bbox: tuple[int, int, int, int]  # original-image pixels, corners ordered and clipped
    points: tuple[tuple[int, int], ...]  # two for single answers, one for multi answers
    mask: np.ndarray  # HxW bool at the original image size
    score: float  # the segmenter's predicted IoU for this mask


@dataclass
class Result:
    """The outcome of one query. A failed parse or segmentation gives ok=False with the
    reason in `error`; it does not raise.

    Multi-object answers: `objects` holds one entry per object and `mask` their union;
    `bbox` is the box enclosing all objects, `points` one point per object and `score`
    None. `ok=True` with no objects is the model saying nothing matches (empty mask).
    """

    ok: bool
    query: str
    error: str | None = None
    mask: np.ndarray | None = None  # HxW bool at the original image size
    bbox: tuple[int, int, int, int] | None = None  # original-image pixels
    points: tuple[tuple[int, int], ...] | None = None
    score: float | None = None  # the segmenter's predicted IoU for the kept mask
    thinking: str = ""
    answer_text: str = ""
    timings: dict[str, float | int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    objects: list[ObjectResult] = field(default_factory=list)
    #: the RGB uint8 HxWx3 image the query ran on (shared by a segment_many call, not copied);
    #: `save` draws on it. Not part of `to_dict`.
    image: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable, the mask as COCO RLE (`segzero_edge.result_io`)."""
        from .result_io import result_to_dict

        return result_to_dict(self)

    def to_json(self) -> dict[str, Any]:
        """The same as `to_dict` (kept for existing callers)."""
        return self.to_dict()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        """The inverse of `to_dict` (the image is not stored: `save` then needs `image=`)."""
        from .result_io import result_fields

        return cls(**result_fields(data))

    def save(self, path: str | Path, image: ImageLike | None = None, *, caption: bool = True) -> Path:
        """Write the overlay PNG (mask tint and outline, box, points, caption) atomically;
        `image` defaults to the one the query ran on."""
        from .result_io import save_overlay

        return save_overlay(self, path, self.image if image is None else load_image(image), caption=caption)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def check_query(
    query: str, max_tokens: int = MAX_QUERY_TOKENS, count_tokens: Callable[[str], int] | None = None
) -> str | None:
    """The reason a query cannot be used, or None when it is fine. `count_tokens` is the
    reasoner's own count (a back end without one is held to the byte bound only)."""
    if not isinstance(query, str):
        return f"query must be a string, got {type(query).__name__}"
    if not query.strip(" .\t\n"):
        return "query is empty"
    size = len(query.encode("utf-8", errors="replace"))
    if size > max_tokens * BYTES_PER_TOKEN:
        return f"query is {size} bytes; at most {max_tokens * BYTES_PER_TOKEN} are read (limit {max_tokens} tokens)"
    if count_tokens is not None:
        tokens = count_tokens(query)
        if tokens > max_tokens:
            return f"query is {tokens} tokens; the limit is {max_tokens} (max_query_tokens)"
    return None


class ReasoningPipeline:
    """Chains any `Reasoner` with any `Segmenter`, following Seg-Zero's inference.

    `answer_format` ("single" | "multi") is the format the reasoner's prompt asks for; None
    takes the reasoner's own `answer_format` attribute, or "single" when it declares none.
    `max_query_tokens` bounds each query (counted by the reasoner's `count_query_tokens`
    when it has one); `image_limits` bounds the images `segment` accepts. `max_time_s` is
    the default wall-clock budget of each query (None: none) and `repetition_stop` the rule
    that cuts a runaway answer (None: off); both need a reasoner whose `generate` takes them.
    """

    def __init__(
        self,
        reasoner: Reasoner,
        segmenter: Segmenter,
        answer_format: str | None = None,
        *,
        max_query_tokens: int = MAX_QUERY_TOKENS,
        image_limits: ImageLimits | None = None,
        max_time_s: float | None = None,
        repetition_stop: RepetitionStop | None = RepetitionStop(),  # noqa: B008 - frozen dataclass
    ) -> None:
        declared = getattr(reasoner, "answer_format", None)
        chosen = check_answer_format(answer_format or declared or "single")
        if declared is not None and declared != chosen:
            raise ValueError(
                f"the reasoner renders the {declared!r} prompt but the pipeline was asked for {chosen!r} "
                f"answers; build the reasoner with answer_format={chosen!r} or drop the pipeline's answer_format"
            )
        if isinstance(max_query_tokens, bool) or not isinstance(max_query_tokens, int) or max_query_tokens < 1:
            raise ValueError(f"max_query_tokens must be a positive integer, got {max_query_tokens!r}")
        _check_time(max_time_s)
        self.reasoner = reasoner
        self.segmenter = segmenter
        self.answer_format = chosen
        self.max_query_tokens = max_query_tokens
        self.image_limits = image_limits
        self.max_time_s = max_time_s
        self.repetition_stop = repetition_stop

    @property
    def _controls(self) -> frozenset[str]:
        # read per call: the reasoner may be swapped on a built pipeline
        return _generate_keywords(self.reasoner)

    def check_query(self, query: str) -> str | None:
        """Why `query` would be refused (None: it is fine), without running any model."""
        return check_query(query, self.max_query_tokens, getattr(self.reasoner, "count_query_tokens", None))

    def segment(
        self,
        image: ImageLike,
        query: str,
        *,
        channel_order: str = "rgb",
        on_token: Callable[[int, str], None] | None = None,
        max_time_s: float | None = None,
    ) -> Result:
        """Segment the object(s) a free-text query describes. Bad images raise `ImageError`;
        everything that goes wrong after that comes back as `Result(ok=False)`.

        channel_order: "rgb", or "bgr" for OpenCV frames (numpy arrays only; see
        `segzero_edge.images`). on_token(token_id, text_so_far): called after every generated
        token. max_time_s: this call's wall-clock budget (default: the pipeline's), counted
        from the query's start (the image encode included); when it runs out, decoding stops
        and the result is ok=False with the partial text."""
        return self.segment_many(
            image, [query], channel_order=channel_order, on_token=on_token, max_time_s=max_time_s
        )[0]

    def segment_many(
        self,
        image: ImageLike,
        queries: Sequence[str],
        *,
        channel_order: str = "rgb",
        on_token: Callable[[int, str], None] | None = None,
        max_time_s: float | None = None,
    ) -> list[Result]:
        """Several queries on one image: both models encode the image once. The keywords are
        `segment`'s; `max_time_s` is each query's own budget.

        Every query is checked (emptiness, byte and token limits) before any model runs; a
        bad query, or one its reasoner or segmenter rejects as bad input (ValueError), gives
        `Result(ok=False, error=...)` for that query alone.
        """
        if isinstance(queries, str):
            raise TypeError("segment_many takes a list of queries; use segment() for one")
        _check_time(max_time_s)
        budget = self.max_time_s if max_time_s is None else max_time_s
        controls = self._control_kwargs(on_token, budget)
        pixels = load_image(image, limits=self.image_limits, channel_order=channel_order)
        problems = [self.check_query(query) for query in queries]
        encoded = embedding = None
        results = []
        for query, problem in zip(queries, problems, strict=True):
            if problem is not None:
                results.append(
                    Result(ok=False, query=str(query), error=problem, timings={"reasoner_vision_ms": 0.0}, image=pixels)
                )
                continue
            timings: dict[str, float | int] = {"reasoner_vision_ms": 0.0}
            query_start = time.perf_counter()
            if encoded is None:  # the first usable query pays the vision encode
                start = time.perf_counter()
                encoded = self.reasoner.encode_image(pixels)
                timings["reasoner_vision_ms"] = _ms(start)
            total = time.perf_counter()
            result = Result(ok=False, query=query, timings=timings, image=pixels)
            results.append(result)
            try:
                embedding = self._answer(result, encoded, pixels, embedding, controls, query_start)
            except ValueError as exc:  # input the back end refuses: this query fails, the others go on
                result.ok, result.mask, result.score, result.objects = False, None, None, []
                result.error = f"query failed: {type(exc).__name__}: {_first_line(exc)}"
            timings["total_ms"] = _ms(total) + timings["reasoner_vision_ms"]
        return results

    def _control_kwargs(self, on_token: Callable[[int, str], None] | None, budget: float | None) -> dict[str, Any]:
        """The generate keywords of one call (max_time_s as a deadline, resolved per query)."""
        wanted = {"on_token": on_token, "max_time_s": budget, "repetition_stop": self.repetition_stop}
        # the repetition stop is on by default, so it is applied where the back end can
        unsupported = [k for k, v in wanted.items() if v is not None and k not in self._controls and k != "repetition_stop"]
        if unsupported:
            raise TypeError(
                f"{type(self.reasoner).__name__}.generate takes no {unsupported}: this back end cannot "
                "stream tokens or stop early; drop those options"
            )
        return {k: v for k, v in wanted.items() if v is not None and k in self._controls}

    def _answer(
        self,
        result: Result,
        encoded: Any,
        pixels: np.ndarray,
        embedding: Any,
        controls: dict[str, Any] | None = None,
        query_start: float | None = None,
    ) -> Any:
        """Generate, parse, rescale and segment one query into `result`; returns the (possibly
        new) segmenter embedding."""
        timings = result.timings
        controls = dict(controls or {})
        budget = controls.get("max_time_s")
        if budget is not None and query_start is not None:  # the image encode spent some of it
            controls["max_time_s"] = max(budget - (time.perf_counter() - query_start), 1e-9)
        generation = self.reasoner.generate(encoded, result.query, **controls)
        timings.update(
            reasoner_prefill_ms=generation.prefill_ms,
            reasoner_decode_ms=generation.decode_ms,
            tokens=int(generation.tokens),
        )
        result.answer_text = generation.text
        if generation.stop_reason is not None:
            reason = generation.stop_reason
            if reason.startswith("time budget") and budget is not None and query_start is not None:
                reason = (  # in the caller's terms: its budget, counted from the query's start
                    f"time budget of {budget:g} s ran out after {generation.tokens} tokens "
                    f"({time.perf_counter() - query_start:.2f} s since the query started)"
                )
            result.error = f"decoding stopped early: {reason}"
            return embedding
        if self.answer_format == "multi":
            return self._segment_objects(result, pixels, embedding)
        return self._segment_single(result, pixels, embedding)

    def _encode(self, pixels: np.ndarray, embedding: Any, timings: dict[str, float]) -> Any:
        """The segmenter's image embedding: the first query that needs it pays the encode."""
        if embedding is None:
            start = time.perf_counter()
            embedding = self.segmenter.encode(pixels)
            timings["segmenter_encode_ms"] = _ms(start)
        else:
            timings["segmenter_encode_ms"] = 0.0
        return embedding

    def _segment_single(self, result: Result, pixels: np.ndarray, embedding: Any) -> Any:
        """Seg-Zero's original format: one box + two points, the best of SAM2's masks."""
        try:
            answer = parse_answer(result.answer_text)
        except AnswerError as exc:
            result.error = f"unparseable answer: {exc}"
            return embedding
        height, width = pixels.shape[:2]
        answer = answer.rescale(width, height)
        result.thinking = answer.thinking
        box = clip_box(answer.bbox, width, height)
        points = tuple(clip_point(p, width, height) for p in answer.points)
        result.bbox, result.points = box, points
        embedding = self._encode(pixels, embedding, result.timings)
        start = time.perf_counter()
        masks, scores = self.segmenter.decode(embedding, box, points)
        result.timings["segmenter_decode_ms"] = _ms(start)
        best = int(np.argmax(scores))
        result.mask = np.asarray(masks[best], dtype=bool)
        result.score = float(scores[best])
        result.objects = [ObjectResult(bbox=box, points=points, mask=result.mask, score=result.score)]
        result.ok = True
        if is_degenerate(answer.bbox):
            result.warnings.append("degenerate box (zero width or height): the points carry the prompt")
        return embedding

    def _segment_objects(self, result: Result, pixels: np.ndarray, embedding: Any) -> Any:
        """Seg-Zero's multi-object format: per object, its box + its one point (label 1) and
        the best of SAM2's masks on the shared embedding; the result mask is the union."""
        height, width = pixels.shape[:2]
        try:
            answer = parse_multi_answer(result.answer_text).rescale(width, height)
        except AnswerError as exc:
            result.error = f"unparseable answer: {exc}"
            return embedding
        result.thinking = answer.thinking
        union = np.zeros((height, width), dtype=bool)
        decode_ms = 0.0
        if answer.objects:
            embedding = self._encode(pixels, embedding, result.timings)
        else:
            result.timings["segmenter_encode_ms"] = 0.0
        for i, obj in enumerate(answer.objects):
            box = clip_box(obj.bbox, width, height)
            point = clip_point(obj.point, width, height)
            start = time.perf_counter()
            masks, scores = self.segmenter.decode(embedding, box, (point,))
            decode_ms += _ms(start)
            best = int(np.argmax(scores))
            mask = np.asarray(masks[best], dtype=bool)
            union |= mask
            result.objects.append(ObjectResult(bbox=box, points=(point,), mask=mask, score=float(scores[best])))
            if is_degenerate(obj.bbox):
                result.warnings.append(f"object {i}: degenerate box (zero width or height): the point carries the prompt")
        result.timings["segmenter_decode_ms"] = decode_ms
        result.mask = union
        if result.objects:
            boxes = np.array([o.bbox for o in result.objects])
            x1, y1 = boxes[:, :2].min(axis=0)
            x2, y2 = boxes[:, 2:].max(axis=0)
            result.bbox = (int(x1), int(y1), int(x2), int(y2))
            result.points = tuple(o.points[0] for o in result.objects)
        result.ok = True
        return embedding


def _check_time(max_time_s: float | None) -> None:
    if max_time_s is not None and (isinstance(max_time_s, bool) or not max_time_s > 0):
        raise ValueError(f"max_time_s must be a positive number of seconds (None: no budget), got {max_time_s!r}")


def _generate_keywords(reasoner: Any) -> frozenset[str]:
    """Which of GENERATE_CONTROLS the reasoner's generate names (or all, with **kwargs)."""
    try:
        params = inspect.signature(reasoner.generate).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: assume the bare protocol
        return frozenset()
    # by name only: a **overrides catch-all (GenerationConfig fields) does not mean it takes these
    return frozenset(p.name for p in params if p.name in GENERATE_CONTROLS)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""
