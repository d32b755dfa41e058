"""Reasoner decode benchmark: transformers vs the ONNX runtime (fp32 / int8 / int4), side by side.

    python bench/reasoner.py                      # tiny + mid (≈0.5B LM), 128 forced tokens
    python bench/reasoner.py --models mid --tokens 256 --threads 2 --workdir /tmp/bench

Per model and back end: prefill ms and decode tokens/s (medians over --repeats runs after a
warm-up; back ends take turns run by run, so load changes on a shared machine hit all of
them alike), the speed-up over transformers, weight bytes read per decode step, and decode
time as a share of the memory-bandwidth roofline: (weights + KV cache read per token) /
(copy bandwidth measured with the same thread count, interleaved with the runs).

Models (random weights, nothing downloaded):
- tiny: the test checkpoint (`segzero_edge.testing`), full Seg-Zero prompt with an 840² image
  (1051 prompt tokens); vision is excluded from the timings on both sides (both cache it).
- mid: Qwen2.5-VL architecture with Qwen2.5-0.5B's language model (hidden 896, 24 layers,
  14 heads, 2 kv heads, intermediate 4864, vocab 151936, tied embeddings) and a 2-block vision
  tower; decoder-only bench on a fixed-length text prompt (--prompt-tokens).
Decoding ignores eos so every run produces exactly --tokens tokens. Threads do not spin
(onnxruntime allow_spinning=0, OMP_WAIT_POLICY=PASSIVE for torch) unless --spin.

Decoder layouts (--layouts): "fused" (contrib ops, I/O-bound cache; the default export) and
"portable" (standard ops, host cache; the graph before the fused one), each with its node
count in the file and after onnxruntime's optimisation (what actually runs).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MID_TEXT = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "rope_scaling": {"type": "mrope", "mrope_section": [8, 12, 12]},  # head_dim 64 (3B/7B: 128, [16, 24, 24])
}
MID_VISION = {
    "depth": 2,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_heads": 2,
    "out_hidden_size": 896,
    "fullatt_block_indexes": [1],
}


@dataclass
class Row:
    model: str
    backend: str
    run: object = None  # callable() -> (prefill_ms, decode_ms, ids)
    prefill_ms: list[float] = field(default_factory=list)
    decode_ms: list[float] = field(default_factory=list)  # per run, for tokens-1 steps
    tokens: int = 0
    weight_bytes: int = 0  # bytes of weights read per decode step
    nodes: tuple[int, int] | None = None  # decoder nodes (file, after onnxruntime's optimisation)
    ids: list[int] = field(default_factory=list)

    @property
    def tok_s(self) -> float:
        return (self.tokens - 1) / (statistics.median(self.decode_ms) / 1e3)

    @property
    def ms_per_token(self) -> float:
        return statistics.median(self.decode_ms) / (self.tokens - 1)


def measure_bandwidth(threads: int, mb: int = 512, repeats: int = 5) -> float:
    """Copy bandwidth in GB/s ((bytes read + bytes written) / time), `threads` numpy copies
    in parallel over disjoint halves of a buffer far larger than the caches."""
    src = np.ones(mb * 2**20 // 8, np.float64)
    dst = np.empty_like(src)
    parts = np.array_split(np.arange(src.size), threads)
    bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts]

    def copy(lo: int, hi: int) -> None:
        np.copyto(dst[lo:hi], src[lo:hi])

    times = []
    for _ in range(repeats + 1):
        workers = [threading.Thread(target=copy, args=b) for b in bounds]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        times.append(time.perf_counter() - start)
    return 2 * src.nbytes / statistics.median(times[1:]) / 1e9


def measure_gemv_bandwidth(threads: int, mb: int = 512, repeats: int = 5) -> float:
    """Read bandwidth in GB/s of onnxruntime's own fp32 GEMV (x[1, K] @ W[K, N], W of `mb` MB):
    what a weight-streaming kernel reaches on this machine with `threads` threads."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    k = 4096
    n = mb * 2**20 // (4 * k)
    weight = np.random.default_rng(0).standard_normal((k, n), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "gemv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor("W", TensorProto.FLOAT, [k, n], weight.tobytes(), raw=True)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    del weight
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    x = np.ones((1, k), np.float32)
    session.run(None, {"x": x})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {"x": x})
        times.append(time.perf_counter() - start)
    return 4 * k * n / statistics.median(times) / 1e9


def onnx_weight_bytes(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    total = 0
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            total += int({e.key: e.value for e in t.external_data}["length"])
        else:
            total += len(t.raw_data) or onnx.numpy_helper.to_array(t).nbytes
    return total


def node_counts(path: Path, threads: int) -> tuple[int, int]:
    """(nodes in the decoder file, nodes after onnxruntime's full optimisation on CPU)."""
    import onnx
    import onnxruntime as ort

    file_nodes = len(onnx.load(str(path), load_external_data=False).graph.node)
    with tempfile.TemporaryDirectory(prefix="opt-", dir=path.parent) as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "opt.data")
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        optimized = len(onnx.load(str(Path(tmp) / "opt.onnx"), load_external_data=False).graph.node)
    return file_nodes, optimized


def torch_weight_bytes(model) -> int:
    """Bytes of the language model + lm_head (the embedding table is read one row per token)."""
    seen, total = set(), 0
    lm = model.model.language_model
    for module in (lm.layers, lm.norm, model.lm_head):
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel() * p.element_size()
    return total


class _Timer:
    def __init__(self):
        self.calls, self.first = 0, None

    def put(self, value):
        self.calls += 1
        if self.calls == 2:
            self.first = time.perf_counter()

    def end(self):
        pass


def torch_runner(model, inputs: dict, tokens: int):
    import torch

    kwargs = dict(
        max_new_tokens=tokens,
        min_new_tokens=tokens,
        do_sample=False,
        top_k=None,
        top_p=None,
        temperature=None,
        repetition_penalty=1.0,
        return_dict_in_generate=True,
    )
    prompt_len = inputs["input_ids"].shape[1]

    def run(n: int = tokens):
        timer = _Timer()
        with torch.inference_mode():
            start = time.perf_counter()
            out = model.generate(
                **inputs, **{**kwargs, "max_new_tokens": n, "min_new_tokens": n}, streamer=timer
            )
            end = time.perf_counter()
        return (timer.first - start) * 1e3, (end - timer.first) * 1e3, out.sequences[0, prompt_len:].tolist()

    return run


def runtime_runner(decoder, embeds, positions, prompt_ids, delta: int, tokens: int):
    from segzero_edge.generation import GenerationConfig

    def run(n: int = tokens):
        cfg = GenerationConfig(max_new_tokens=n, repetition_penalty=1.0)
        start = time.perf_counter()
        r = decoder.generate(
            embeds,
            positions,
            prompt_ids,
            rope_delta=delta,
            config=cfg,
            stop_ids=frozenset(),
            prefill_start=start,
        )
        return r.prefill_ms, r.decode_ms, r.ids

    return run


def text_decoder(engine: Path, dims: dict, threads: int, spin):
    from segzero_edge.runtime.decoder import TextDecoder
    from segzero_edge.runtime.providers import create_session

    return TextDecoder(
        create_session(engine / "embed.onnx", "cpu", threads=threads, spin=spin),
        create_session(engine / "decoder.onnx", "cpu", threads=threads, spin=spin),
        num_layers=dims["num_layers"],
        kv_heads=dims["kv_heads"],
        head_dim=dims["head_dim"],
    )


#: --int4-symmetric: which int4 weights are quantized symmetrically (no zero points). "head":
#: the embedding table (embed.onnx) and lm_head (the fused decoder's `final/lm_head`).
INT4_SYMMETRIC = ("none", "head", "all")


def export_text(
    model, work: Path, precisions: list[str], block_sizes: list[int], accuracy_level: int, layouts: list[str],
    symmetric: tuple[str, ...] = ("none",),
):
    """{label: dir} of embed/decoder graphs per layout and precision under `work` (reused when present)."""
    dirs = {}
    for layout in layouts:
        for label, path in _export_layout(
            model, work / layout, precisions, block_sizes, accuracy_level, layout, symmetric
        ).items():
            dirs[f"{label} {layout}"] = path
    return dirs


def _int4_symmetric(mode: str, name: str):
    """`quantize_int4`'s `symmetric` for graph `name` under --int4-symmetric `mode`."""
    if mode == "none":
        return False
    if mode == "all" or name == "embed.onnx":
        return True
    return ("final/lm_head",)


def _export_layout(
    model, work: Path, precisions: list[str], block_sizes: list[int], accuracy_level: int, layout: str,
    symmetric: tuple[str, ...] = ("none",),
):
    from segzero_edge.export.precision import convert
    from segzero_edge.export.reasoner_text import PRECISION_POLICY, export_decoder, export_embed

    fp32 = work / "fp32"
    if not (fp32 / "decoder.onnx").is_file():
        print(f"  exporting fp32 text graphs ({layout}) to {fp32} ...", file=sys.stderr)
        export_embed(model, fp32 / "embed.onnx")
        export_decoder(model, fp32 / "decoder.onnx", layout=layout)
    dirs = {}
    for precision in precisions:
        variants = [
            (f"int4 b{b} acc{accuracy_level}" + (f" sym-{sym}" if sym != "none" else ""),
             work / (f"int4-b{b}-a{accuracy_level}" + (f"-sym-{sym}" if sym != "none" else "")), b, sym)
            for b in block_sizes for sym in symmetric
        ]
        for label, out, block, sym in variants if precision == "int4" else [(precision, work / precision, 32, "none")]:
            if precision == "fp32":
                dirs[label] = fp32
                continue
            if not (out / "decoder.onnx").is_file():
                print(f"  converting to {label} ...", file=sys.stderr)
                for name in ("embed.onnx", "decoder.onnx"):
                    convert(
                        fp32 / name, out / name, precision, PRECISION_POLICY, block_size=block,
                        accuracy_level=accuracy_level, int4_symmetric=_int4_symmetric(sym, name),
                    )
            dirs[label] = out
    return dirs


def setup_model(name: str, args, work: Path) -> tuple[list[Row], int]:
    """Rows (with runners) for one model, and its KV bytes read per decode step."""
    import torch

    from segzero_edge.export.reasoner import model_dims
    from segzero_edge.testing import cached_tiny_models, tiny_reasoner_config

    torch.set_num_threads(args.threads)
    if name == "tiny":
        from segzero_edge.graphs.qwen_rope import rope_index
        from segzero_edge.models.reasoner import TorchReasoner

        reasoner = TorchReasoner.from_pretrained(cached_tiny_models().reasoner)
        model = reasoner.model
        image = np.random.default_rng(0).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
        enc = reasoner.encode_image(image)
        inputs = reasoner.prompt_inputs(enc, "the red circle")
        inputs.pop("pixel_values")
        inputs["mm_encoder_outputs"] = {"image": enc.vision}
        prompt_ids = inputs["input_ids"][0].numpy()
        features = enc.features.numpy()
        pad = model.config.image_token_id
        positions, deltas = rope_index(prompt_ids[None], enc.image_grid_thw.numpy(), image_token_id=pad)
    else:
        from transformers import Qwen2_5_VLForConditionalGeneration

        config = tiny_reasoner_config(
            text_config=MID_TEXT, vision_config=MID_VISION, tie_word_embeddings=True
        )
        torch.manual_seed(0)
        model = Qwen2_5_VLForConditionalGeneration(config).eval()
        prompt_ids = np.random.default_rng(0).integers(0, 1600, size=args.prompt_tokens).astype(np.int64)
        inputs = {
            "input_ids": torch.from_numpy(prompt_ids[None]),
            "attention_mask": torch.ones(1, args.prompt_tokens, dtype=torch.long),
        }
        positions = np.broadcast_to(np.arange(args.prompt_tokens), (3, 1, args.prompt_tokens)).copy()
        deltas, features, pad = np.zeros((1, 1), np.int64), None, None
    dims = model_dims(model)
    rows = [] if args.no_transformers else [
        Row(
            name,
            "transformers fp32",
            torch_runner(model, inputs, args.tokens),
            weight_bytes=torch_weight_bytes(model),
        )
    ]
    counted: dict[Path, tuple[int, int]] = {}
    engines = export_text(
        model, work / name, args.precisions, args.block_sizes, args.accuracy_level, args.layouts, args.int4_symmetric
    )
    for (label, engine), spin in itertools.product(engines.items(), args.spin_modes):
        decoder = text_decoder(engine, dims, args.threads, spin)
        if engine not in counted:
            counted[engine] = node_counts(engine / "decoder.onnx", args.threads)
        nodes = counted[engine]
        if len(args.spin_modes) > 1:
            label = f"{label} spin {spin}"
        embeds = decoder.embed(prompt_ids[None])
        if features is not None:
            embeds[0, prompt_ids == pad] = features.astype(embeds.dtype)
        runner = runtime_runner(decoder, embeds, positions, prompt_ids, int(deltas[0, 0]), args.tokens)
        rows.append(
            Row(
                name, f"runtime {label}", runner, weight_bytes=onnx_weight_bytes(engine / "decoder.onnx"), nodes=nodes
            )
        )
    context = len(prompt_ids) + args.tokens // 2
    kv = 2 * dims["num_layers"] * dims["kv_heads"] * dims["head_dim"] * 4 * context
    return rows, kv


def bench(rows: list[Row], args, bandwidths: list[float], gemv: list[float]) -> None:
    for row in rows:  # warm-up: session arenas, torch kernels
        row.run(4)
    for i in range(args.repeats):
        bandwidths.append(measure_bandwidth(args.threads))
        gemv.append(measure_gemv_bandwidth(args.threads))
        for row in rows:
            print(f"  run {i + 1}/{args.repeats}: {row.model} {row.backend}", file=sys.stderr)
            prefill, decode, ids = row.run()
            row.prefill_ms.append(prefill)
            row.decode_ms.append(decode)
            row.ids, row.tokens = ids, args.tokens


def table(rows: list[Row], bandwidth: float, kv_bytes: dict[str, int]) -> str:
    lines = [
        "| model | back end | prefill ms | decode tok/s | ms/token | decode vs transformers | "
        "weights MB/token | read GB/s | roofline ms/token | roofline share | greedy tokens = transformers | "
        "decoder nodes (file / optimised) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    base = {r.model: r for r in rows if r.backend.startswith("transformers")}
    for r in rows:
        ref = base.get(r.model)  # None with --no-transformers
        read = r.weight_bytes + kv_bytes[r.model]
        roof_ms = read / (bandwidth * 1e9) * 1e3
        vs = f"{r.tok_s / ref.tok_s:.2f}×" if ref else "—"
        same = f"{sum(a == b for a, b in zip(r.ids, ref.ids, strict=False))}/{len(ref.ids)}" if ref else "—"
        lines.append(
            f"| {r.model} | {r.backend} | {statistics.median(r.prefill_ms):.1f} | {r.tok_s:.1f} | "
            f"{r.ms_per_token:.2f} | {vs} | {r.weight_bytes / 1e6:.1f} | "
            f"{read / r.ms_per_token / 1e6:.1f} | {roof_ms:.2f} | "
            f"{roof_ms / r.ms_per_token:.0%} | {same} | "
            f"{f'{r.nodes[0]} / {r.nodes[1]}' if r.nodes else '—'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="tiny,mid", help="comma list of tiny, mid")
    parser.add_argument(
        "--precisions", default="fp32,int8,int4", help="runtime precisions (fp32,fp16,int8,int4)"
    )
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per run (eos ignored)")
    parser.add_argument("--prompt-tokens", type=int, default=128, help="mid model prompt length")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per back end (median reported)")
    parser.add_argument(
        "--threads", type=int, default=2, help="intra-op threads (onnxruntime) and torch threads"
    )
    parser.add_argument("--block-sizes", default="32,128", help="int4 block sizes to compare (comma list)")
    parser.add_argument(
        "--int4-symmetric", default="none",
        help="comma list of int4 variants compared side by side: none (zero points everywhere, the export "
        "default), head (embedding table and lm_head symmetric), all (every int4 weight symmetric)",
    )
    parser.add_argument(
        "--accuracy-level", type=int, default=4, help="MatMulNBits accuracy_level (4: int8 compute)"
    )
    parser.add_argument(
        "--layouts", default="fused,portable", help="decoder KV layouts to compare (fused, portable)"
    )
    parser.add_argument("--spin", action="store_true", help="let idle threads spin (onnxruntime and OpenMP)")
    parser.add_argument(
        "--spin-modes", default=None,
        help="comma list of runtime spin modes measured side by side (off, on, run: spin only inside a run); "
        "default: on with --spin, else off",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep exported graphs here (reused across runs)"
    )
    parser.add_argument(
        "--no-transformers", action="store_true",
        help="skip the transformers row (runtime variants only; the 'vs transformers' columns print —)",
    )
    args = parser.parse_args(argv)
    args.precisions = [p for p in args.precisions.split(",") if p]
    args.block_sizes = [int(b) for b in args.block_sizes.split(",") if b]
    args.layouts = [layout for layout in args.layouts.split(",") if layout]
    args.int4_symmetric = tuple(m for m in args.int4_symmetric.split(",") if m)
    if not args.int4_symmetric or set(args.int4_symmetric) - set(INT4_SYMMETRIC):
        parser.error(f"--int4-symmetric takes a comma list of {list(INT4_SYMMETRIC)}, got {args.int4_symmetric}")
    args.spin_modes = [m for m in (args.spin_modes or ("on" if args.spin else "off")).split(",") if m]
    from segzero_edge.runtime.providers import SPIN_POLICIES

    unknown = sorted(set(args.spin_modes) - set(SPIN_POLICIES))
    if unknown:
        parser.error(f"unknown --spin-modes {unknown}; choose from {list(SPIN_POLICIES)}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-reasoner-"))
    load_before = os.getloadavg()
    rows, kv, bandwidths, gemv = [], {}, [], []
    for name in [m for m in args.models.split(",") if m]:
        model_rows, kv[name] = setup_model(name, args, work)
        bench(model_rows, args, bandwidths, gemv)
        rows += model_rows
        for r in model_rows:
            r.run = None  # free the sessions and models before the next model
    bandwidth = statistics.median(bandwidths)
    print(
        f"threads {args.threads}, spinning {'on' if args.spin else 'off'}; memory bandwidth (numpy copy, "
        f"{args.threads} threads, read+write): median {bandwidth:.1f} GB/s over {len(bandwidths)} measurements "
        f"(min {min(bandwidths):.1f}, max {max(bandwidths):.1f}); load average "
        f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after (cores: {os.cpu_count()})"
    )
    print(
        f"streaming read of onnxruntime's fp32 GEMV (512 MB weight, {args.threads} threads): median "
        f"{statistics.median(gemv):.1f} GB/s (min {min(gemv):.1f}, max {max(gemv):.1f}); the roofline share "
        f"uses the copy figure; 'read GB/s' = (weights + KV) bytes per token / ms per token"
    )
    print(table(rows, bandwidth, kv))
    print(
        "KV cache read per decode step at the mean context (fp32, in the roofline): "
        + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in kv.items())
    )
    return 0


if __name__ == "__main__":
    if "--spin" not in sys.argv:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP
    raise SystemExit(main())
