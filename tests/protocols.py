"""What the pipeline needs of a back end, checked by calling it (not `isinstance`).

`isinstance(x, Reasoner)` on a `runtime_checkable` Protocol only checks that the method names
exist. These helpers check what `ReasoningPipeline` relies on: each method takes the
protocol's arguments, `encode_image`/`encode` results feed `generate`/`decode` more than once,
and the results have the documented types, shapes and dtypes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from segzero_edge.pipeline import Generation, Reasoner, Segmenter


def assert_accepts(method: Callable[..., Any], protocol_method: Callable[..., Any]) -> None:
    """`method` (bound) can be called the way the protocol's method is: the protocol's
    parameters in order and by name, and any extra parameters optional."""
    wanted = list(inspect.signature(protocol_method).parameters.values())[1:]  # drop self
    got = list(inspect.signature(method).parameters.values())
    name = getattr(method, "__qualname__", repr(method))
    for i, param in enumerate(wanted):
        assert i < len(got) and got[i].kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD), (
            f"{name} lacks positional parameter {i} ({param.name}) of {protocol_method.__qualname__}"
        )
        assert got[i].name == param.name or got[i].kind is param.POSITIONAL_ONLY, (
            f"{name} names parameter {i} {got[i].name!r}, the protocol {param.name!r}"
        )
    for extra in got[len(wanted) :]:
        assert extra.default is not extra.empty or extra.kind in (extra.VAR_POSITIONAL, extra.VAR_KEYWORD), (
            f"{name} has a required parameter {extra.name!r} the pipeline never passes"
        )


def assert_reasoner(reasoner: Any, image: np.ndarray, queries: Sequence[str] = ("the red circle", "a cup")) -> list[Generation]:
    """`reasoner` satisfies `Reasoner` as the pipeline uses it; returns its generations."""
    assert_accepts(reasoner.encode_image, Reasoner.encode_image)
    assert_accepts(reasoner.generate, Reasoner.generate)
    encoded = reasoner.encode_image(image)
    out = []
    for query in queries:  # one encoding, several queries (segment_many)
        g = reasoner.generate(encoded, query)
        assert isinstance(g, Generation), f"generate returned {type(g).__name__}, not Generation"
        assert isinstance(g.text, str)
        assert isinstance(g.tokens, int) and g.tokens >= 0
        assert g.prefill_ms >= 0 and g.decode_ms >= 0
        out.append(g)
    return out


def assert_segmenter(
    segmenter: Any, image: np.ndarray, box: Sequence[int], points: Sequence[Sequence[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """`segmenter` satisfies `Segmenter` as the pipeline uses it; returns (masks, scores)."""
    assert_accepts(segmenter.encode, Segmenter.encode)
    assert_accepts(segmenter.decode, Segmenter.decode)
    height, width = image.shape[:2]
    embedding = segmenter.encode(image)
    masks, scores = segmenter.decode(embedding, box, points)
    assert isinstance(masks, np.ndarray) and masks.dtype == bool
    assert masks.ndim == 3 and masks.shape[1:] == (height, width), masks.shape
    assert isinstance(scores, np.ndarray) and scores.shape == (masks.shape[0],), scores.shape
    assert scores.dtype == np.float32 and np.isfinite(scores).all()
    again, again_scores = segmenter.decode(embedding, box, points)  # the embedding is reusable
    np.testing.assert_array_equal(again, masks)
    np.testing.assert_array_equal(again_scores, scores)
    return masks, scores
