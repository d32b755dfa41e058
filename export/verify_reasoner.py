"""Parity of an exported reasoner against the PyTorch reference (HF `generate`).

For each (image, query) pair:
- free-running greedy decode on both sides: token-exact match and where they first diverge;
- teacher-forced on the reference tokens: at prefill and at every decode step, the runtime's
  logits are compared with HF's raw logits (before logits processors): top-1 agreement and
  cosine similarity. This measures a quantized graph step by step even after its free-running
  text has drifted.

fp32 graphs must be token-exact. Quantized graphs report their agreement; bars for them only
mean something on trained checkpoints (random weights have flat, meaningless margins).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segzero_edge.generation import GenerationConfig

#: Default queries for the parity pairs (varied length, punctuation and case).
PARITY_QUERIES: tuple[str, ...] = (
    "the red circle",
    "The thing I could cut bread with.",
    "what can hold water?",
    "the person on the left",
    "the animal that is sleeping.",
    "a small blue cup next to the laptop",
)

#: Bars `passed()` applies per decoder precision when none are given. fp32 and fp16 bars
#: hold on any weights; the int8/int4 bars are typical of trained checkpoints, not of
#: random-weight test models.
DEFAULT_BARS: dict[str, dict[str, float]] = {
    "fp32": {"min_exact_rate": 1.0, "min_top1": 1.0, "min_cosine": 0.9999},
    "fp16": {"min_top1": 0.95, "min_cosine": 0.999},
    "int8": {"min_top1": 0.85, "min_cosine": 0.98},
    "int4": {"min_top1": 0.8, "min_cosine": 0.97},
}


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of [N, V] arrays (float64)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return num / np.maximum(den, 1e-30)


@dataclass
class PairParity:
    """One (image, query) pair."""

    query: str
    reference_ids: list[int]
    runtime_ids: list[int]
    top1: np.ndarray  # [n] bool, teacher-forced top-1 agreement per step (step 0 = prefill)
    cos: np.ndarray  # [n] float64, teacher-forced logit cosine per step
    prompt_equal: bool = True  # the runtime's prompt ids equal the HF processor's

    @property
    def exact(self) -> bool:
        return self.reference_ids == self.runtime_ids

    @property
    def first_divergence(self) -> int | None:
        """Index of the first differing token (None when identical)."""
        for i, (a, b) in enumerate(zip(self.reference_ids, self.runtime_ids, strict=False)):
            if a != b:
                return i
        if len(self.reference_ids) != len(self.runtime_ids):
            return min(len(self.reference_ids), len(self.runtime_ids))
        return None


@dataclass
class ReasonerParityReport:
    """Parity over several pairs; `summary()` prints it, `passed()` checks bars."""

    precision: str
    pairs: list[PairParity] = field(default_factory=list)

    @property
    def exact_rate(self) -> float:
        """Fraction of pairs whose greedy tokens are identical end to end."""
        return float(np.mean([p.exact for p in self.pairs])) if self.pairs else 0.0

    @property
    def token_match_rate(self) -> float:
        """Fraction of reference tokens reproduced before the first divergence, over all pairs."""
        total = sum(len(p.reference_ids) for p in self.pairs)
        same = sum(
            len(p.reference_ids) if p.first_divergence is None else p.first_divergence for p in self.pairs
        )
        return same / total if total else 0.0

    @property
    def top1(self) -> float:
        """Teacher-forced top-1 agreement over every step of every pair."""
        return float(np.concatenate([p.top1 for p in self.pairs]).mean()) if self.pairs else 0.0

    @property
    def prefill_top1(self) -> float:
        return float(np.mean([p.top1[0] for p in self.pairs])) if self.pairs else 0.0

    @property
    def prefill_cosine(self) -> float:
        return float(np.mean([p.cos[0] for p in self.pairs])) if self.pairs else 0.0

    @property
    def mean_cosine(self) -> float:
        return float(np.concatenate([p.cos for p in self.pairs]).mean()) if self.pairs else 0.0

    @property
    def min_cosine(self) -> float:
        return float(np.concatenate([p.cos for p in self.pairs]).min()) if self.pairs else 0.0

    def passed(
        self,
        min_exact_rate: float | None = None,
        min_top1: float | None = None,
        min_cosine: float | None = None,
    ) -> bool:
        """True when every given bar holds (bars default to `DEFAULT_BARS[precision]`)."""
        bars = dict(DEFAULT_BARS.get(self.precision, {}))
        given = {"min_exact_rate": min_exact_rate, "min_top1": min_top1, "min_cosine": min_cosine}
        if any(v is not None for v in given.values()):
            bars = {k: v for k, v in given.items() if v is not None}
        checks = {"min_exact_rate": self.exact_rate, "min_top1": self.top1, "min_cosine": self.min_cosine}
        prompts_ok = all(p.prompt_equal for p in self.pairs)
        return bool(self.pairs) and prompts_ok and all(checks[k] >= v for k, v in bars.items())

    def summary(self) -> str:
        lines = [
            f"reasoner parity ({self.precision}, {len(self.pairs)} pairs): "
            f"token-exact {self.exact_rate:.0%}, tokens matched {self.token_match_rate:.1%}, "
            f"teacher-forced top-1 {self.top1:.1%} (prefill {self.prefill_top1:.0%}), "
            f"logit cosine prefill {self.prefill_cosine:.6f} mean {self.mean_cosine:.6f} min {self.min_cosine:.6f}"
        ]
        for p in self.pairs:
            div = "identical" if p.first_divergence is None else f"diverges at token {p.first_divergence}"
            if not p.prompt_equal:
                div += ", PROMPT IDS DIFFER"
            lines.append(
                f"  {p.query!r}: {len(p.reference_ids)} ref / {len(p.runtime_ids)} runtime tokens, {div}, "
                f"top-1 {p.top1.mean():.1%}, cos min {p.cos.min():.6f}"
            )
        return "\n".join(lines)


def parity_images(n: int, seed: int = 0) -> list[np.ndarray]:
    """n random RGB uint8 images of varied sizes and aspect ratios (seeded)."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(96, 640, size=2))
        # smooth-ish content: a coarse random grid upsampled, plus noise
        coarse = rng.integers(0, 256, size=(max(2, h // 48), max(2, w // 48), 3))
        img = np.repeat(np.repeat(coarse, 48, 0), 48, 1)[:h, :w]
        img = np.pad(img, ((0, max(0, h - img.shape[0])), (0, max(0, w - img.shape[1])), (0, 0)), mode="edge")
        images.append(np.clip(img + rng.integers(-20, 21, size=img.shape), 0, 255).astype(np.uint8))
    return images


def verify_reasoner(
    torch_reasoner: Any,
    ort_reasoner: Any,
    n_pairs: int = 5,
    max_new_tokens: int = 64,
    seed: int = 0,
    *,
    queries: tuple[str, ...] = PARITY_QUERIES,
    images: list[np.ndarray] | None = None,
) -> ReasonerParityReport:
    """Compare `ort_reasoner` (OrtReasoner) with `torch_reasoner` (TorchReasoner) on `n_pairs`
    seeded (image, query) pairs, greedy, `max_new_tokens` each."""
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    images = images if images is not None else parity_images(n_pairs, seed)
    if len(images) < n_pairs:
        raise ValueError(f"{len(images)} images for {n_pairs} pairs")
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        temperature=0.0,
        repetition_penalty=ort_reasoner.config.repetition_penalty,
    )
    report = ReasonerParityReport(precision=str(ort_reasoner.meta["precision"]["decoder"]))
    for i in range(n_pairs):
        query = queries[i % len(queries)]
        ref = torch_reasoner.generate_ids(
            torch_reasoner.encode_image(images[i]), query, config, return_logits=True
        )
        encoded = ort_reasoner.encode_image(images[i])
        prompt_ids, result = ort_reasoner.generate_ids(encoded, query, config)
        logits = ort_reasoner.teacher_forced_logits(encoded, query, ref.ids)
        reference = ref.logits
        top1 = logits.argmax(-1) == reference.argmax(-1)
        same_prompt = bool(np.array_equal(prompt_ids, ref.prompt_ids))
        report.pairs.append(
            PairParity(query, list(ref.ids), list(result.ids), top1, cosine(logits, reference), same_prompt)
        )
    return report
