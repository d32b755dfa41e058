"""Decode against the peers a user would pick instead, on the same weights, side by side.

    python bench/peers.py                        # mid (≈0.5B Qwen2 LM), 300-token prompt, 128 tokens
    python bench/peers.py --tokens 64 --repeats 3 --workdir /tmp/peers

One random-weight Qwen2 language model (Qwen2.5-0.5B's shape, `bench/reasoner.py`'s "mid"; or
--size small, 8 layers of width 256) is
saved as a Qwen2ForCausalLM; the same weights go into a Qwen2.5-VL model for our exporter.
Systems (each skipped with a message when it is not installed; the `bench` extra installs
them):

- transformers fp32 (Qwen2ForCausalLM.generate), the reference for the ratios;
- this runtime, int4 (--block-size, --accuracy-level), the fused decoder, default settings;
- onnxruntime-genai, int4 from its own model builder with the same block size and accuracy
  level (`python -m onnxruntime_genai.models.builder`);
- llama.cpp (llama-cpp-python) Q4_0, from a GGUF written by llama.cpp's converter
  (--gguf-converter, the `convert_hf_to_gguf.py` of a llama.cpp checkout).

--sam2-peer DIR adds the segmenter: samexporter's SAM2 encoder and decoder graphs in DIR
(`bench/samexporter_encoder.py` writes them with the Meta checkpoint they came from,
`weights.pt`) against ours exported from that same checkpoint (fp32 and int8 encoder) and
torch eager, through `bench/segmenter.py`: encode and decode medians, ratios, and each back
end's best mask against torch's. `--skip reasoner` times the segmenter alone.

Every system gets the same prompt ids, --threads intra-op threads, greedy decoding with eos
ignored (exactly --tokens new tokens), and runs in turn, run by run, so load changes hit all
alike; medians over --repeats after a warm-up. Printed: prefill ms, decode tok/s, the ratio
to each peer, and how many greedy tokens equal transformers' (int4 drifts on random weights).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reasoner import MID_TEXT, MID_VISION

#: --size small: a 8-layer model for a loaded or slow machine (same head_dim and M-RoPE sections as mid).
SMALL_TEXT = {
    **MID_TEXT,
    "hidden_size": 256,
    "intermediate_size": 1024,
    "num_hidden_layers": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 8192,
}
SIZES = {"mid": (MID_TEXT, MID_VISION), "small": (SMALL_TEXT, {**MID_VISION, "out_hidden_size": 256})}

Runner = Callable[[int], tuple[float, float, list[int]]]  # n tokens -> (prefill ms, decode ms, ids)


@dataclass
class System:
    name: str
    run: Runner | None = None
    prefill_ms: list[float] = field(default_factory=list)
    decode_ms: list[float] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)

    def tok_s(self, tokens: int) -> float:
        return (tokens - 1) / (statistics.median(self.decode_ms) / 1e3)


def build_models(work: Path, size: str = "mid", seed: int = 0):
    """(Qwen2ForCausalLM saved under work/qwen2 with a tokenizer, Qwen2.5-VL model with the same LM weights)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from segzero_edge.testing import tiny_reasoner_config
    from segzero_edge.testing.tokenizer import write_tokenizer

    text_dims, vision_dims = SIZES[size]
    vl_config = tiny_reasoner_config(text_config=text_dims, vision_config=vision_dims, tie_word_embeddings=True)
    text = vl_config.get_text_config()
    rope = dict(getattr(text, "rope_parameters", None) or {})
    config = Qwen2Config(
        **{k: v for k, v in text_dims.items() if k != "rope_scaling"},
        rms_norm_eps=text.rms_norm_eps,
        rope_theta=rope.get("rope_theta", 1e6),
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=text.bos_token_id,
        eos_token_id=text.eos_token_id,
    )
    torch.manual_seed(seed)
    lm = Qwen2ForCausalLM(config).eval()
    from transformers import Qwen2_5_VLForConditionalGeneration

    vl = Qwen2_5_VLForConditionalGeneration(vl_config).eval()
    state = {f"model.language_model.{k[len('model.'):]}": v for k, v in lm.state_dict().items() if k.startswith("model.")}
    missing, unexpected = vl.load_state_dict(state, strict=False)
    not_vision = [k for k in missing if not k.startswith("model.visual.") and k != "lm_head.weight"]
    if unexpected or not_vision:
        raise RuntimeError(f"weight copy into Qwen2.5-VL failed: missing {not_vision[:5]}, unexpected {unexpected[:5]}")
    vl.tie_weights()
    out = work / "qwen2"
    if not (out / "config.json").is_file():
        lm.save_pretrained(out)
        write_tokenizer(out)
    return lm, vl, out


def transformers_runner(lm, prompt: np.ndarray, threads: int) -> Runner:
    import torch

    torch.set_num_threads(threads)
    ids = torch.from_numpy(prompt[None])

    def run(n: int):
        first: list[float] = []

        class Streamer:  # put() #0 receives the prompt, #1 the first new token
            def put(self, value):
                first.append(time.perf_counter())

            def end(self):
                pass

        with torch.inference_mode():
            start = time.perf_counter()
            out = lm.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                repetition_penalty=1.0, streamer=Streamer(), top_k=None, top_p=None, temperature=None,
            )
            end = time.perf_counter()
        t_first = first[1]
        return (t_first - start) * 1e3, (end - t_first) * 1e3, out[0, len(prompt):].tolist()

    return run


def ours_runner(vl, work: Path, prompt: np.ndarray, args, spin_mode: str) -> Runner:
    from segzero_edge.export.precision import convert
    from segzero_edge.export.reasoner_text import PRECISION_POLICY, export_decoder, export_embed, text_dims
    from segzero_edge.generation import GenerationConfig
    from segzero_edge.runtime.decoder import TextDecoder
    from segzero_edge.runtime.providers import create_session

    fp32, out = work / "ours-fp32", work / f"ours-int4-b{args.block_size}-a{args.accuracy_level}"
    if not (out / "decoder.onnx").is_file():
        print("  exporting ours ...", file=sys.stderr)
        export_embed(vl, fp32 / "embed.onnx")
        export_decoder(vl, fp32 / "decoder.onnx")
        for name in ("embed.onnx", "decoder.onnx"):
            convert(fp32 / name, out / name, "int4", PRECISION_POLICY, block_size=args.block_size,
                    accuracy_level=args.accuracy_level)
    d = text_dims(vl)
    spin = "on" if spin_mode == "on" else "off"  # "default": this runtime's default, no spinning
    text = TextDecoder(
        create_session(out / "embed.onnx", threads=args.threads, spin=spin),
        create_session(out / "decoder.onnx", threads=args.threads, spin=spin),
        num_layers=d["num_layers"], kv_heads=d["kv_heads"], head_dim=d["head_dim"],
    )
    embeds = text.embed(prompt[None])
    positions = np.broadcast_to(np.arange(len(prompt)), (3, 1, len(prompt))).copy()

    def run(n: int):
        start = time.perf_counter()
        r = text.generate(embeds, positions, prompt, rope_delta=0, config=GenerationConfig(max_new_tokens=n),
                          stop_ids=frozenset(), prefill_start=start)
        return r.prefill_ms, r.decode_ms, r.ids

    return run


def genai_runner(model_dir: Path, work: Path, prompt: np.ndarray, args, spin_mode: str) -> Runner | str:
    if importlib.util.find_spec("onnxruntime_genai") is None:
        return "onnxruntime-genai is not installed (pip install 'segzero-edge[bench]')"
    import onnxruntime_genai as og

    out = work / f"genai-int4-b{args.block_size}-a{args.accuracy_level}"
    if not (out / "genai_config.json").is_file():
        print("  building the onnxruntime-genai model ...", file=sys.stderr)
        cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(model_dir), "-o", str(out),
               "-p", "int4", "-e", "cpu", "--extra_options", f"int4_block_size={args.block_size}",
               f"int4_accuracy_level={args.accuracy_level}"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            return f"onnxruntime-genai's builder failed: {done.stderr.strip().splitlines()[-1:]}"
    # one folder per spin mode: links to the model files, its own genai_config.json
    variant = work / f"{out.name}-spin-{spin_mode}"
    variant.mkdir(exist_ok=True)
    for f in out.iterdir():
        if f.name != "genai_config.json" and not (variant / f.name).exists():
            (variant / f.name).symlink_to(f.resolve())
    config = json.loads((out / "genai_config.json").read_text())
    options = config["model"]["decoder"]["session_options"]
    options["intra_op_num_threads"] = args.threads
    if spin_mode != "default":
        options["session.intra_op.allow_spinning"] = "1" if spin_mode == "on" else "0"
    (variant / "genai_config.json").write_text(json.dumps(config, indent=2))
    model = og.Model(str(variant))
    ids = prompt.astype(np.int32)

    def run(n: int):
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + n, min_length=len(ids) + n, do_sample=False)
        generator = og.Generator(model, params)
        start = time.perf_counter()
        generator.append_tokens(ids)
        generator.generate_next_token()
        first = time.perf_counter()
        while not generator.is_done():
            generator.generate_next_token()
        end = time.perf_counter()
        return (first - start) * 1e3, (end - first) * 1e3, list(generator.get_sequence(0))[len(ids):]

    return run


def llama_runner(model_dir: Path, work: Path, prompt: np.ndarray, args, spin_mode: str) -> Runner | str:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (build it from source: pip install llama-cpp-python)"
    if args.gguf_converter is None:
        return "llama.cpp needs --gguf-converter (convert_hf_to_gguf.py from a llama.cpp checkout)"
    from llama_cpp import Llama

    gguf = work / "model-q4_0.gguf"
    if not gguf.is_file():
        done = subprocess.run([sys.executable, str(args.gguf_converter), str(model_dir), "--outfile", str(gguf),
                               "--outtype", "q4_0"], capture_output=True, text=True)
        if done.returncode != 0:
            return f"the GGUF converter failed: {done.stderr.strip().splitlines()[-1:]}"
    llm = Llama(str(gguf), n_ctx=len(prompt) + 512, n_threads=args.threads, verbose=False)

    def run(n: int):
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt.tolist())
        first_id = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        first = time.perf_counter()
        ids = [first_id]
        while len(ids) < n:
            llm.eval([ids[-1]])
            ids.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        return (first - start) * 1e3, (time.perf_counter() - first) * 1e3, ids

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="mid", help="model size (mid: Qwen2.5-0.5B's LM)")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per run (eos ignored)")
    parser.add_argument("--prompt-tokens", type=int, default=300, help="prompt length")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per system (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for every system")
    parser.add_argument("--block-size", type=int, default=128, help="int4 block size (ours and genai)")
    parser.add_argument("--accuracy-level", type=int, default=4, help="MatMulNBits accuracy level (ours and genai)")
    parser.add_argument("--spin", default="default",
                        help="comma list of onnxruntime spin modes, each measured side by side: default (each "
                        "system's own: ours off, genai onnxruntime's, on), on, off (forced for both)")
    parser.add_argument("--gguf-converter", type=Path, default=None, help="llama.cpp's convert_hf_to_gguf.py")
    parser.add_argument("--skip", default="",
                        help="comma list of systems to leave out (transformers, genai, llama.cpp; reasoner: the whole decode table)")
    parser.add_argument("--sam2-peer", type=Path, default=None,
                        help="folder with samexporter's encoder.onnx, decoder.onnx and weights.pt (bench/samexporter_encoder.py)")
    parser.add_argument("--sam2-opset", type=int, default=20, help="opset of our segmenter graphs")
    parser.add_argument("--sam2-repeats", type=int, default=3, help="timed encodes per segmenter back end and pass")
    parser.add_argument("--workdir", type=Path, default=None, help="keep models here (reused across runs)")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-peers-"))
    work.mkdir(parents=True, exist_ok=True)
    skip = {s for s in args.skip.split(",") if s}
    modes = [m for m in args.spin.split(",") if m]
    if not modes or set(modes) - {"default", "on", "off"}:
        parser.error(f"--spin takes default, on, off (comma list), got {args.spin!r}")  # checked before any model work
    unknown = skip - {"transformers", "genai", "llama.cpp", "reasoner"}
    if unknown:
        parser.error(f"--skip takes transformers, genai, llama.cpp, reasoner; got {', '.join(sorted(unknown))}")
    sam2_files = sam2_peer_files(args.sam2_peer) if args.sam2_peer is not None else None
    if isinstance(sam2_files, str):
        parser.error(sam2_files)
    if "reasoner" not in skip:
        decode_table(args, work, skip, modes)
    if sam2_files is not None:
        segmenter_table(args, work, *sam2_files)
    return 0


def sam2_peer_files(folder: Path) -> tuple[Path, Path, Path] | str:
    """(encoder, decoder, checkpoint) in a --sam2-peer folder, or what is missing."""
    files = tuple(folder / name for name in ("encoder.onnx", "decoder.onnx", "weights.pt"))
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        return f"--sam2-peer {folder} lacks {', '.join(missing)} (write it with bench/samexporter_encoder.py)"
    return files  # type: ignore[return-value]


def segmenter_table(args: argparse.Namespace, work: Path, encoder: Path, decoder: Path, checkpoint: Path) -> None:
    """SAM2 hiera-t: torch, ours fp32/int8 and the peer on the peer's own weights (bench/segmenter.py)."""
    import segmenter

    print(f"\nSAM2 hiera-t from {checkpoint}: torch eager, ours (opset {args.sam2_opset}), samexporter", flush=True)
    segmenter.main([
        "--configs", "hiera-t", "--peer-config", "hiera-t", "--checkpoint", str(checkpoint),
        "--peer-encoder", str(encoder), "--peer-decoder", str(decoder), "--precisions", "fp32,int8",
        "--opsets", str(args.sam2_opset), "--threads", str(args.threads), "--repeats", str(args.sam2_repeats),
        # 20 decodes per encode: with 5 the decoder medians swung by 25 % between quiet runs
        "--decode-repeats", "20",
        "--workdir", str(work / "sam2"),
    ])


def decode_table(args: argparse.Namespace, work: Path, skip: set[str], modes: list[str]) -> None:
    """The language-model decode comparison: every system in turn, medians and ratios."""
    load_before = os.getloadavg()
    lm, vl, model_dir = build_models(work, args.size)
    prompt = np.random.default_rng(0).integers(0, 1600, size=args.prompt_tokens).astype(np.int64)
    systems = [System("transformers fp32", None if "transformers" in skip else transformers_runner(lm, prompt, args.threads))]
    for mode in modes:
        tag = f" spin {mode}" if len(modes) > 1 else ""
        ours_name = f"this runtime int4 b{args.block_size} acc{args.accuracy_level}{tag}"
        systems.append(System(ours_name, ours_runner(vl, work, prompt, args, mode)))
        for name, make in (("onnxruntime-genai", genai_runner), ("llama.cpp Q4_0", llama_runner)):
            key = name.split()[0].replace("onnxruntime-", "")
            runner = "skipped with --skip" if key in skip else make(model_dir, work, prompt, args, mode)
            if isinstance(runner, str):
                print(f"{name}{tag}: skipped: {runner}")
            else:
                systems.append(System(name + tag, runner))
    systems = [s for s in systems if s.run is not None]
    for s in systems:  # warm-up
        s.run(4)
    for i in range(args.repeats):
        for s in systems:
            print(f"  run {i + 1}/{args.repeats}: {s.name}", file=sys.stderr)
            prefill, decode, ids = s.run(args.tokens)
            s.prefill_ms.append(prefill)
            s.decode_ms.append(decode)
            s.ids = ids
    print(f"{args.size} model, {args.prompt_tokens}-token prompt, {args.tokens} new tokens, {args.threads} threads, spin {args.spin}, "
          f"medians of {args.repeats}; load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after "
          f"({os.cpu_count()} cores)")
    def ours_for(system: System) -> System:  # ratios against ours in the same spin mode
        tag = system.name.split(" spin ")[-1] if " spin " in system.name else None
        mine = [s for s in systems if s.name.startswith("this runtime")]
        return next((s for s in mine if tag and s.name.endswith(f"spin {tag}")), mine[0])

    ref = next((s for s in systems if s.name.startswith("transformers")), None)
    print("| system | prefill ms | decode tok/s | our decode ÷ theirs (same spin) | our prefill speed ÷ theirs | "
          "greedy tokens = transformers |")
    print("|---|---:|---:|---:|---:|---|")
    for s in systems:
        same = f"{sum(a == b for a, b in zip(s.ids, ref.ids, strict=False))}/{len(ref.ids)}" if ref else "—"
        print(f"| {s.name} | {statistics.median(s.prefill_ms):.0f} | {s.tok_s(args.tokens):.1f} | "
              f"{ours_for(s).tok_s(args.tokens) / s.tok_s(args.tokens):.2f}× | "
              f"{statistics.median(s.prefill_ms) / statistics.median(ours_for(s).prefill_ms):.2f}× | {same} |")


if __name__ == "__main__":
    raise SystemExit(main())
