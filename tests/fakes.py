"""Scripted back ends for testing the chain logic itself (parsing, rescaling, argmax,
encode-once, error paths) independently of any model. Parity with real models is
tested elsewhere."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segzero_edge.pipeline import Generation


class ScriptedReasoner:
    """Answers each query with a fixed text (or a per-query mapping)."""

    def __init__(self, answers: dict[str, str] | str) -> None:
        self.answers = answers
        self.encode_calls = 0
        self.generate_calls = 0

    def encode_image(self, image: np.ndarray) -> np.ndarray:
        self.encode_calls += 1
        return image

    def generate(self, encoded: np.ndarray, query: str) -> Generation:
        self.generate_calls += 1
        text = self.answers if isinstance(self.answers, str) else self.answers[query]
        return Generation(text=text, prefill_ms=1.0, decode_ms=2.0, tokens=len(text))


class BoxSegmenter:
    """Three masks per prompt: the box, the box shrunk by `shrink` px, and nothing;
    the shrunk one gets the highest score, so the pipeline must pick index 1."""

    def __init__(self, shrink: int = 2) -> None:
        self.shrink = shrink
        self.encode_calls = 0
        self.prompts: list[tuple[Sequence[int], Sequence[Sequence[int]]]] = []

    def encode(self, image: np.ndarray) -> tuple[int, int]:
        self.encode_calls += 1
        return image.shape[:2]

    def decode(self, embedding, box, points):
        self.prompts.append((tuple(box), tuple(tuple(p) for p in points)))
        height, width = embedding
        masks = np.zeros((3, height, width), dtype=bool)
        x1, y1, x2, y2 = box
        masks[0, y1 : y2 + 1, x1 : x2 + 1] = True
        s = self.shrink
        masks[1, y1 + s : y2 + 1 - s, x1 + s : x2 + 1 - s] = True
        return masks, np.array([0.5, 0.9, 0.1], dtype=np.float32)


def answer_text(bbox, p1, p2, think: str = "it is there") -> str:
    return (
        f'<think>{think}</think><answer>{{"bbox": {list(bbox)}, "points_1": {list(p1)}, '
        f'"points_2": {list(p2)}}}</answer>'
    )
