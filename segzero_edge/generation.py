"""How the reasoner picks tokens: one `GenerationConfig` for every back end.

The PyTorch reference (`segzero_edge.models.reasoner`), the runtime's decode loop
(`segzero_edge.runtime.decoder`) and the exporter's parity check all read it, so greedy,
sampling and the repetition penalty mean the same thing everywhere. Also importable as
`segzero_edge.runtime.GenerationConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class GenerationConfig:
    """How to pick tokens. Greedy (temperature 0) is Seg-Zero's evaluation setting."""

    max_new_tokens: int = field(default=1024, metadata={"help": "stop after this many new tokens"})
    temperature: float = field(
        default=0.0, metadata={"help": "0 = greedy; > 0 samples from softmax(logits / T)"}
    )
    top_p: float = field(
        default=1.0, metadata={"help": "nucleus sampling mass in (0, 1]; 1 keeps every token"}
    )
    seed: int | None = field(default=None, metadata={"help": "sampling seed (None: fresh entropy each call)"})
    repetition_penalty: float | None = field(
        default=None,
        metadata={
            "help": "HF repetition penalty (> 0; 1 = off). None = the checkpoint's generation_config value "
            "(Qwen2.5-VL-Instruct ships 1.05, which HF applies even in greedy mode)"
        },
    )

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty is not None and not self.repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0 (1 = off), got {self.repetition_penalty}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def resolved(self, default_repetition_penalty: float) -> GenerationConfig:
        """A copy with repetition_penalty filled in from the checkpoint default when it is None."""
        if self.repetition_penalty is not None:
            return self
        return replace(self, repetition_penalty=float(default_repetition_penalty))
