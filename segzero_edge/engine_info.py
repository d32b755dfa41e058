"""What an engine directory holds and roughly how much memory it needs (`segzero-edge info`).

Read from the manifest and the graphs' own protobuf (no onnx, no onnxruntime session, so a
7B engine is described in milliseconds): each graph's precision, size on disk (external
data included) and inputs/outputs, and an estimate of peak memory for a given sequence
length, so that a robot builder can check whether an engine fits an 8 GB Orin Nano.

The estimate (all terms in bytes; L = prompt + generated tokens):

    weights   = every graph's bytes on disk (onnxruntime and TensorRT hold them resident)
    kv        = 2 · layers · kv_heads · head_dim · L · sizeof(cache dtype)
    prefill   = heads · L² · 4  +  L · hidden · 4 · 20        (one layer's attention probabilities,
                                                              hidden states and a Qwen2.5 MLP, ~5.4× wide)
    vision    = 16 · P² · 4  +  P · 1280 · 4 · 20             (P = image patches after Qwen's resize
                                                              to at most max_pixels; a full-attention block
                                                              of a Qwen2.5-VL tower: 16 heads, width 1280)
    segmenter = 64 · (the encoder's output bytes)            (Hiera's activations and onnxruntime's arena
                                                              at 1024², calibrated on the shipped engines)
    peak      = RUNTIME_OVERHEAD + weights + max(vision, kv + prefill, segmenter)

The stages run one after another and free their activations, so only the largest counts on
top of the resident weights. It is an estimate, not a measurement: allocator arenas,
onnxruntime's weight prepacking and TensorRT's workspace add to it. On the shipped engines
(x86-64, onnxruntime CPU) the measured peak RSS of one `segment()` was 387 MiB (58 MiB after
the imports, 126 MiB with the engines loaded, the SAM2 encode the largest stage); the
estimate gives 369 MiB at 2,048 tokens. A long-running process holds about twice that
(`bench/soak.py`, 1,000 calls: 690-731 MiB), as onnxruntime's arenas keep each stage's
largest activations; budget for that margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .manifest import Manifest, read_manifest
from .onnx_refs import ValueInfo, external_refs, graph_io

#: Python, numpy, tokenizers and onnxruntime (58 MiB measured here after the imports) plus the
#: sessions' own structures beyond their weights (~40 MiB for five graphs).
RUNTIME_OVERHEAD = 100 << 20
SEGMENTER_FACTOR = 64
VISION_HEADS, VISION_HIDDEN = 16, 1280
ACTIVATION_FACTOR = 20
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class GraphInfo:
    component: str
    role: str
    path: str  # relative to the engine directory
    precision: str
    bytes: int  # the graph file plus its external data
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]


@dataclass(frozen=True)
class MemoryEstimate:
    max_length: int
    weights: int
    kv: int
    prefill: int
    vision: int
    segmenter: int

    @property
    def peak(self) -> int:
        return RUNTIME_OVERHEAD + self.weights + max(self.vision, self.kv + self.prefill, self.segmenter)


def graphs(manifest: Manifest) -> list[GraphInfo]:
    """Every ONNX graph the reasoner and segmenter components list."""
    out = []
    files = manifest.data["files"]
    for component in ("reasoner", "segmenter"):
        meta = manifest.components.get(component)
        if meta is None:
            continue
        precision = meta.get("precision", {})
        for role, name in meta["files"].items():
            if not name.endswith(".onnx"):
                continue
            relative = f"{component}/{name}"
            path = manifest.path(relative)
            size = files[relative]["bytes"]
            folder = relative.rsplit("/", 1)[0]
            for location in {ref.location for ref in external_refs(path) if ref.location}:
                size += files.get(f"{folder}/{location}", {}).get("bytes", 0)
            inputs, outputs = graph_io(path)
            out.append(GraphInfo(component, role, relative, str(precision.get(role, "fp32")), size, inputs, outputs))
    return out


def _bytes(info: ValueInfo) -> int:
    count = 1
    for dim in info.shape:
        count *= dim if isinstance(dim, int) else 1
    return count * _DTYPE_BYTES.get(info.dtype, 4)


def estimate(manifest: Manifest, infos: list[GraphInfo], max_length: int) -> MemoryEstimate:
    """The peak-memory terms of the module docstring for sequences of `max_length` tokens."""
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1 token, got {max_length}")
    weights = sum(g.bytes for g in infos)
    kv = prefill = vision = segmenter = 0
    reasoner = manifest.components.get("reasoner")
    if reasoner is not None:
        dims = reasoner["dims"]
        decoder = next((g for g in infos if g.component == "reasoner" and g.role == "decoder"), None)
        past = next((i for i in decoder.inputs if i.name.startswith("past_key_values")), None) if decoder else None
        kv_bytes = _DTYPE_BYTES.get(past.dtype, 4) if past else 4
        kv = 2 * int(dims["num_layers"]) * int(dims["kv_heads"]) * int(dims["head_dim"]) * max_length * kv_bytes
        prefill = int(dims["num_heads"]) * max_length**2 * 4 + max_length * int(dims["hidden"]) * 4 * ACTIVATION_FACTOR
        pre = reasoner.get("preprocess", {})
        patch = int(pre.get("patch_size", 14))
        pixels = min(int(pre.get("resize", 840)) ** 2, int(pre.get("max_pixels", 12845056)))
        patches = pixels // patch**2
        vision = VISION_HEADS * patches**2 * 4 + patches * VISION_HIDDEN * 4 * ACTIVATION_FACTOR
    encoder = next((g for g in infos if g.component == "segmenter" and g.role == "encoder"), None)
    if encoder is not None:
        segmenter = SEGMENTER_FACTOR * sum(_bytes(o) for o in encoder.outputs)
    return MemoryEstimate(max_length, weights, kv, prefill, vision, segmenter)


def describe(root: str | Path, max_length: int = 2048) -> dict[str, Any]:
    """JSON-ready description of the engine directory at `root` (every file verified)."""
    manifest = read_manifest(Path(root))
    infos = graphs(manifest)
    est = estimate(manifest, infos, max_length)
    trt = manifest.components.get("trt") or {}
    return {
        "engines": str(root),
        "package_version": manifest.data.get("package_version"),
        "graphs": [
            {
                "graph": g.path,
                "precision": g.precision,
                "bytes": g.bytes,
                "inputs": [[i.name, i.dtype, list(i.shape)] for i in g.inputs],
                "outputs": [[o.name, o.dtype, list(o.shape)] for o in g.outputs],
            }
            for g in infos
        ],
        "tensorrt_plans": {k: v for k, v in trt.items()} or None,
        "memory_estimate": {
            "max_length": est.max_length,
            "runtime_overhead": RUNTIME_OVERHEAD,
            "weights": est.weights,
            "kv_cache": est.kv,
            "prefill_activations": est.prefill,
            "vision_activations": est.vision,
            "segmenter_activations": est.segmenter,
            "peak": est.peak,
        },
    }


def mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def format_text(info: dict[str, Any]) -> str:
    """The human-readable form `segzero-edge info` prints."""
    lines = [f"engines: {info['engines']} (segzero-edge {info['package_version']})"]
    for g in info["graphs"]:
        lines.append(f"  {g['graph']}: {g['precision']}, {mib(g['bytes'])}")
        for kind in ("inputs", "outputs"):
            shown = [f"{n} {t}{shape}" for n, t, shape in g[kind]]
            extra = f" (+{len(shown) - 6} more)" if len(shown) > 6 else ""
            lines.append(f"    {kind}: " + ", ".join(shown[:6]) + extra)
    if info["tensorrt_plans"]:
        lines.append(f"  tensorrt plans: {info['tensorrt_plans']}")
    m = info["memory_estimate"]
    lines.append(
        f"estimated peak memory at {m['max_length']} tokens: {mib(m['peak'])} = runtime {mib(m['runtime_overhead'])} "
        f"+ weights {mib(m['weights'])} + max(vision {mib(m['vision_activations'])}, kv cache {mib(m['kv_cache'])} "
        f"+ prefill {mib(m['prefill_activations'])}, segmenter {mib(m['segmenter_activations'])}) "
        "(an estimate: see segzero_edge.engine_info)"
    )
    return "\n".join(lines)
