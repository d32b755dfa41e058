"""How close each quantized text graph stays to fp32 on a trained reasoner: int8, and int4 at
block sizes 32/128 and accuracy levels 4/0 (the choice behind the export defaults), and int4
with the embedding table and lm_head (or every weight) quantized symmetrically.

    python bench/int4_agreement.py --model runs/e3/sft/model --workdir /tmp/agree [--variants "int4 b32 acc4,..."]

For each example scene and query (`segzero_edge/assets/examples`), the fp32 fused decoder's
greedy continuation (up to --tokens) is the reference; every graph reports teacher-forced
top-1 agreement with it and how many of its own greedy tokens equal it. Random weights make
this meaningless (int4 flips near-tied logits from the first token), so use a trained model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "segzero_edge" / "assets" / "examples"
VARIANTS = [  # label, precision, block size, accuracy level, symmetric int4 ("none" | "head" | "all")
    ("int8", "int8", 32, 4, "none"),
    ("int4 b32 acc4", "int4", 32, 4, "none"),
    ("int4 b128 acc4", "int4", 128, 4, "none"),
    ("int4 b32 acc0", "int4", 32, 0, "none"),
    ("int4 b128 acc0", "int4", 128, 0, "none"),
    # symmetric int4 (no zero points): the embedding table and lm_head only, or every weight
    ("int4 b32 acc4 sym-head", "int4", 32, 4, "head"),
    ("int4 b32 acc4 sym-all", "int4", 32, 4, "all"),
]
#: `quantize_int4(symmetric=)` per graph file and variant; "head" is the embedding table
#: (embed.onnx) and the fused decoder's lm_head node
SYMMETRIC = {
    "none": {"embed.onnx": False, "decoder.onnx": False},
    "head": {"embed.onnx": True, "decoder.onnx": ("final/lm_head",)},
    "all": {"embed.onnx": True, "decoder.onnx": True},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a trained Qwen2.5-VL checkpoint (HF folder)")
    parser.add_argument("--workdir", type=Path, required=True, help="where the graphs are written (reused)")
    parser.add_argument("--tokens", type=int, default=96, help="reference continuation length (stops at eos)")
    parser.add_argument("--examples", type=int, default=3, help="how many example scenes to use")
    parser.add_argument("--variants", default=None, help="comma list of variant labels (default: all)")
    args = parser.parse_args(argv)
    chosen = VARIANTS
    if args.variants:
        wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
        unknown = sorted(set(wanted) - {v[0] for v in VARIANTS})
        if unknown:
            parser.error(f"unknown --variants {unknown}; choose from {[v[0] for v in VARIANTS]}")
        chosen = [v for v in VARIANTS if v[0] in wanted]

    from segzero_edge.export.precision import convert
    from segzero_edge.export.reasoner_text import PRECISION_POLICY, export_decoder, export_embed, text_dims
    from segzero_edge.generation import GenerationConfig
    from segzero_edge.graphs.qwen_rope import rope_index
    from segzero_edge.models.reasoner import TorchReasoner
    from segzero_edge.runtime.decoder import TextDecoder
    from segzero_edge.runtime.providers import create_session

    reasoner = TorchReasoner.from_pretrained(args.model)
    model = reasoner.model
    fp32 = args.workdir / "fp32"
    if not (fp32 / "decoder.onnx").is_file():
        print(f"  exporting fp32 text graphs to {fp32} ...", file=sys.stderr)
        export_embed(model, fp32 / "embed.onnx")
        export_decoder(model, fp32 / "decoder.onnx")
    folders = {"fp32": fp32}
    for label, precision, block, level, sym in chosen:
        out = args.workdir / label.replace(" ", "_")
        if not (out / "decoder.onnx").is_file():
            print(f"  converting to {label} ...", file=sys.stderr)
            for name in ("embed.onnx", "decoder.onnx"):
                convert(fp32 / name, out / name, precision, PRECISION_POLICY, block_size=block, accuracy_level=level,
                        int4_symmetric=SYMMETRIC[sym][name])
        folders[label] = out
    d = text_dims(model)
    decoders = {
        label: TextDecoder(
            create_session(folder / "embed.onnx", threads=2),
            create_session(folder / "decoder.onnx", threads=2),
            num_layers=d["num_layers"], kv_heads=d["kv_heads"], head_dim=d["head_dim"],
        )
        for label, folder in folders.items()
    }
    items = json.loads((EXAMPLES / "examples.json").read_text())["examples"][: args.examples]
    stats = {label: [0, 0, 0] for label in decoders}  # top-1 hits, greedy hits, rows
    cfg = GenerationConfig(max_new_tokens=args.tokens)
    stop = set(reasoner.eos_ids)
    pad = model.config.image_token_id
    for item in items:
        enc = reasoner.encode_image(np.asarray(Image.open(EXAMPLES / item["image"]).convert("RGB")))
        ids = reasoner.prompt_inputs(enc, item["query"])["input_ids"][0].numpy()
        positions, deltas = rope_index(ids[None], enc.image_grid_thw.numpy(), image_token_id=pad)
        delta = int(deltas[0, 0])

        def embeds(decoder, ids=ids, enc=enc):
            e = decoder.embed(ids[None])
            e[0, ids == pad] = enc.features.numpy().astype(e.dtype)
            return e

        ref = decoders["fp32"].generate(embeds(decoders["fp32"]), positions, ids, rope_delta=delta, config=cfg, stop_ids=stop)
        for label, decoder in decoders.items():
            e = embeds(decoder)
            logits = decoder.teacher_forced(e, positions, ref.ids, rope_delta=delta)
            own = decoder.generate(e, positions, ids, rope_delta=delta, config=cfg, stop_ids=stop)
            stats[label][0] += int((logits.argmax(-1) == np.array(ref.ids)).sum())
            stats[label][1] += sum(a == b for a, b in zip(own.ids, ref.ids, strict=False))
            stats[label][2] += len(ref.ids)
    print(f"{args.model}, {len(items)} example queries, fp32 greedy reference of {stats['fp32'][2]} tokens")
    print("| graph | teacher-forced top-1 = fp32 | greedy tokens = fp32 |")
    print("|---|---:|---:|")
    for label, (top1, greedy, rows) in stats.items():
        print(f"| {label} | {top1}/{rows} ({top1 / rows:.1%}) | {greedy}/{rows} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
