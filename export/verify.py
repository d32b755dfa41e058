"""Prove an engine directory matches its source models: the check behind `segzero-edge verify`.

The manifest is verified first (sha256 of every file), then each exported stage is run
side by side with its PyTorch reference on seeded random inputs. Bars depend on the
graph precision (fp32 must be token-exact / logit-exact; quantized graphs report their
agreement against bounds set from measured figures).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segzero_edge.manifest import read_manifest


@dataclass
class EngineParity:
    """Both stages' reports and whether each passed its bars."""

    segmenter: Any = None  # SegmenterParityReport
    segmenter_passed: bool | None = None
    reasoner: Any = None  # ReasonerParityReport
    reasoner_passed: bool | None = None

    @property
    def passed(self) -> bool:
        return all(v is not False for v in (self.segmenter_passed, self.reasoner_passed))

    def summary(self) -> str:
        lines = []
        if self.segmenter is not None:
            lines.append(("PASS " if self.segmenter_passed else "FAIL ") + self.segmenter.summary())
        if self.reasoner is not None:
            lines.append(("PASS " if self.reasoner_passed else "FAIL ") + self.reasoner.summary())
        return "\n".join(lines)


def verify_engines(
    engine_dir: Path,
    *,
    reasoner: str | None = None,
    segmenter: str | None = None,
    stages: tuple[str, ...] = ("segmenter", "reasoner"),
    n_images: int = 4,
    n_prompts: int = 3,
    n_pairs: int = 5,
    max_new_tokens: int = 64,
    seed: int = 0,
    device: str = "cpu",
) -> EngineParity:
    """Compare the graphs in `engine_dir` with their sources (default: the manifest's)."""
    engine_dir = Path(engine_dir)
    manifest = read_manifest(engine_dir)
    sources = manifest.data.get("sources", {})
    result = EngineParity()
    if "segmenter" in stages:
        from segzero_edge.export.verify_segmenter import THRESHOLDS, verify_segmenter
        from segzero_edge.models.segmenter import TorchSegmenter
        from segzero_edge.runtime.segmenter import OrtSegmenter

        meta = manifest.component("segmenter")
        ort = OrtSegmenter.from_dir(engine_dir / "segmenter", meta=meta)
        ref = TorchSegmenter.from_pretrained(segmenter or sources["segmenter"], device=device)
        report = verify_segmenter(ref, ort, n_images=n_images, n_prompts=n_prompts, seed=seed)
        result.segmenter = report
        result.segmenter_passed = report.passed(THRESHOLDS[meta["precision"]["encoder"]])
    if "reasoner" in stages:
        from segzero_edge.export.verify_reasoner import verify_reasoner
        from segzero_edge.models.reasoner import TorchReasoner
        from segzero_edge.runtime.reasoner import OrtReasoner

        ort = OrtReasoner.from_dir(engine_dir / "reasoner", meta=manifest.component("reasoner"))
        # the reference renders the prompt the engines do (the manifest's answer format)
        ref = TorchReasoner.from_pretrained(
            reasoner or sources["reasoner"], device=device, answer_format=ort.answer_format
        )
        report = verify_reasoner(ref, ort, n_pairs=n_pairs, max_new_tokens=max_new_tokens, seed=seed)
        result.reasoner = report
        result.reasoner_passed = report.passed()
    return result
