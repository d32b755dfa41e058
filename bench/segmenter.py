"""SAM2 encode/decode latency: PyTorch eager vs ONNX Runtime fp32 / int8 / fp16, side by side.

No download: `tiny` is the test checkpoint; `hiera-t` / `hiera-l` are the sam2.1-hiera-tiny /
-large architectures from their public config values (transformers' convert_sam2_to_hf.py)
with random weights. Latency does not depend on the weight values; the "IoU vs torch"
column does (random weights give noisier masks than trained ones), so read it as a sanity
check and the parity tests / `export.verify_segmenter` as the measurement.

    python bench/segmenter.py --configs tiny,hiera-t,hiera-l --repeats 3
    python bench/segmenter.py --configs hiera-t --opsets 18,20 --threads 2 \
        --peer-encoder samexporter/encoder.onnx      # opsets and a peer side by side
    python bench/segmenter.py --configs hiera-t --opsets 20 --threads 2 --checkpoint peer/weights.pt \
        --peer-encoder peer/encoder.onnx --peer-decoder peer/decoder.onnx   # the peer on the same weights

Per config: export once per opset (fp32 graphs; int8 and fp16 derived from them), then time
`encode(image)` and `decode(embedding, box, points)` end to end (numpy preprocessing and
mask upsampling included: every back end does them; session creation and the first, warm-up
call are not timed). The numpy preprocessing alone is printed per config. --peer-encoder
(and --peer-decoder) time another exporter's graphs of the --peer-config architecture (e.g.
samexporter's sam2.1 hiera-tiny) with the same preprocessing, prompts and mask upsampling.
--checkpoint builds that config from a Meta SAM2 checkpoint (`segzero_edge.models.sam2_meta`)
instead of random weights: given the peer's own checkpoint, every back end runs the same
weights and the peer's masks are compared with torch's too. Back ends are loaded one at a time
(hiera-l's sessions do not all fit in 24 GB together) in passes of alternating order, so
that drift on a shared machine hits them alike. Prints a markdown table with medians and
ratios to torch.
"""

from __future__ import annotations

import argparse
import collections
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: sam2.1 Hiera backbones (transformers' convert_sam2_to_hf.get_config); prompt encoder and
#: mask decoder use the Sam2Config defaults (hidden 256) for all of them.
HIERA = {
    "hiera-t": {},  # Sam2HieraDetConfig defaults are hiera-tiny
    "hiera-s": {"blocks_per_stage": [1, 2, 11, 2], "global_attention_blocks": [7, 10, 13]},
    "hiera-b+": {
        "hidden_size": 112,
        "embed_dim_per_stage": [112, 224, 448, 896],
        "num_attention_heads_per_stage": [2, 4, 8, 16],
        "blocks_per_stage": [2, 3, 16, 3],
        "global_attention_blocks": [12, 16, 20],
        "window_positional_embedding_background_size": [14, 14],
    },
    "hiera-l": {
        "hidden_size": 144,
        "embed_dim_per_stage": [144, 288, 576, 1152],
        "num_attention_heads_per_stage": [2, 4, 8, 16],
        "blocks_per_stage": [2, 6, 36, 4],
        "global_attention_blocks": [23, 33, 43],
        "window_positional_embedding_background_size": [7, 7],
        "window_size_per_stage": [8, 4, 16, 8],
    },
}


#: The Meta trunk name (`sam2_meta.HieraSize.name`) of each config --checkpoint may load.
META_TRUNK = {"hiera-t": "tiny", "hiera-s": "small", "hiera-b+": "base_plus", "hiera-l": "large"}


def build_model(name: str, checkpoint: Path | None = None) -> Any:
    import torch
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2Model, Sam2VisionConfig

    if name == "tiny":
        from segzero_edge.testing import cached_tiny_models

        return Sam2Model.from_pretrained(cached_tiny_models(seed=0).segmenter).eval()
    if name not in HIERA:
        raise SystemExit(f"unknown config {name!r}; choose from tiny, {', '.join(HIERA)}")
    if checkpoint is not None:
        from segzero_edge.models.sam2_meta import convert_state_dict, model_from_conversion, read_checkpoint

        conversion = convert_state_dict(read_checkpoint(checkpoint))  # read and converted once
        if conversion.size.name != META_TRUNK[name]:
            raise SystemExit(
                f"--checkpoint {checkpoint} holds a hiera {conversion.size.name} trunk, not {name}'s ({META_TRUNK[name]})"
            )
        return model_from_conversion(conversion)
    backbone = Sam2HieraDetConfig(**HIERA[name])
    channels = list(reversed(backbone.embed_dim_per_stage))
    config = Sam2Config(
        vision_config=Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=channels)
    )
    torch.manual_seed(0)
    return Sam2Model(config).eval()


def export_all(model: Any, out: Path, precisions: list[str], opsets: list[int]) -> dict[tuple[int, str], Path]:
    """{(opset, precision): folder with encoder.onnx + decoder.onnx}: fp32 exported once per
    opset, the other precisions converted from it. Graphs already in `out` (--workdir) are reused."""
    from segzero_edge.export.precision import convert
    from segzero_edge.export.segmenter import (
        PRECISION_POLICY,
        export_segmenter_decoder,
        export_segmenter_encoder,
    )
    from segzero_edge.graphs import segmenter_io as io

    dirs: dict[tuple[int, str], Path] = {}
    for opset in opsets:
        fp32 = out / f"op{opset}" / "fp32"
        if not (fp32 / io.ENCODER_FILE).is_file():
            export_segmenter_encoder(model, fp32 / io.ENCODER_FILE, opset=opset)
        if not (fp32 / io.DECODER_FILE).is_file():
            export_segmenter_decoder(model, fp32 / io.DECODER_FILE, opset=opset)
        dirs[(opset, "fp32")] = fp32
        for precision in precisions:
            if precision == "fp32":
                continue
            target = out / f"op{opset}" / precision
            # int8 keeps the fp32 decoder, as export_segmenter does; also time the int8 decoder.
            for file in (io.ENCODER_FILE, io.DECODER_FILE):
                if not (target / file).is_file():
                    convert(fp32 / file, target / file, precision, PRECISION_POLICY)
            dirs[(opset, precision)] = target
    return dirs


class PeerSegmenter:
    """Another exporter's graphs of one architecture (e.g. samexporter's `encoder.onnx` and
    `decoder.onnx`), timed like ours: the same numpy preprocessing, prompt arrays and mask
    upsampling; only the graphs differ. Without a decoder graph only `encode` is timed."""

    def __init__(self, encoder: Path, decoder: Path | None, threads: int | None) -> None:
        from segzero_edge.runtime.providers import create_session

        self.encoder = create_session(encoder, "cpu", threads=threads)
        self.decoder = create_session(decoder, "cpu", threads=threads) if decoder is not None else None
        self.input = self.encoder.get_inputs()[0].name
        self.outputs = [o.name for o in self.encoder.get_outputs()]

    def encode(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], int, int]:
        from segzero_edge.graphs import segmenter_io as io
        from segzero_edge.graphs.sam_preprocess import check_image, preprocess_image

        height, width = check_image(image)
        pixels = preprocess_image(image, io.IMAGE_SIZE, io.IMAGE_MEAN, io.IMAGE_STD)
        features = self.encoder.run(None, {self.input: pixels})
        return dict(zip(self.outputs, features, strict=True)), height, width

    def decode(self, embedding: Any, box: Any, points: Any) -> tuple[np.ndarray, np.ndarray] | None:
        from segzero_edge.graphs import segmenter_io as io
        from segzero_edge.graphs.sam_preprocess import masks_from_logits, prompt_arrays

        if self.decoder is None:
            return None
        features, height, width = embedding
        coords, labels = prompt_arrays(box, points, height, width)
        low_res = io.IMAGE_SIZE // 4
        feeds = {
            **features,
            # samexporter's decoder appends the (0, 0, label -1) padding point itself.
            "point_coords": coords[:, :-1],
            "point_labels": labels[:, :-1],
            "mask_input": np.zeros((1, 1, low_res, low_res), dtype=np.float32),
            "has_mask_input": np.zeros((1,), dtype=np.float32),
        }
        logits, scores = self.decoder.run(None, feeds)
        return masks_from_logits(logits[0], height, width), scores[0]


def _mb(path: Path) -> float:
    """The graph and its external-data file, if any (not other files that share its prefix)."""
    return sum(f.stat().st_size for f in (path, path.with_name(path.name + ".data")) if f.is_file()) / 1e6


#: CPU ms (all threads of this process) of the last `_time` call: on a shared machine a
#: nice-19 bench's wall time is mostly waiting for the CPU; its CPU time is the work done.
_last_cpu_ms = 0.0


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    global _last_cpu_ms
    cpu, start = time.process_time(), time.perf_counter()
    out = fn()
    wall = (time.perf_counter() - start) * 1000.0
    _last_cpu_ms = (time.process_time() - cpu) * 1000.0
    return wall, out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _groups(
    dirs: dict[tuple[int, str], Path], peer: tuple[Path, Path | None] | None = None
) -> list[tuple[str, Path | None, dict[str, Path | None]]]:
    """(label, encoder graph, {row label: decoder graph}): one encoder session per group, its
    decoders timed on the same embeddings (int8 also with the int8 decoder export_segmenter skips).
    Row labels name the opset when more than one is timed; a peer encoder is its own group."""
    from segzero_edge.graphs import segmenter_io as io

    groups: list[tuple[str, Path | None, dict[str, Path | None]]] = [
        ("torch eager", None, {"torch eager": None})
    ]
    several = len({opset for opset, _ in dirs}) > 1
    for (opset, precision), folder in dirs.items():
        tag = f" op{opset}" if several else ""
        encoder, decoder = folder / io.ENCODER_FILE, folder / io.DECODER_FILE
        fp32_decoder = dirs[(opset, "fp32")] / io.DECODER_FILE
        if precision == "int8":
            decoders = {f"ort int8{tag} (dec fp32)": fp32_decoder, f"ort int8{tag} (dec int8)": decoder}
        else:
            decoders = {f"ort {precision}{tag}": decoder}
        groups.append((f"ort {precision}{tag}", encoder, decoders))
    if peer is not None:
        groups.append((PEER, peer[0], {PEER: peer[1]}))
    return groups


#: Row label of --peer-encoder / --peer-decoder.
PEER = "samexporter fp32"


def _load_group(
    model: Any, encoder: Path | None, decoders: dict[str, Path | None], threads: int | None
) -> dict:
    """{row label: segmenter}, the ORT ones sharing one encoder session."""
    import copy

    from segzero_edge.models.segmenter import TorchSegmenter
    from segzero_edge.runtime.providers import create_session
    from segzero_edge.runtime.segmenter import OrtSegmenter

    if encoder is None:
        return {label: TorchSegmenter(model) for label in decoders}
    labels = list(decoders)
    if labels == [PEER]:
        return {PEER: PeerSegmenter(encoder, decoders[PEER], threads)}
    first = OrtSegmenter(encoder, decoders[labels[0]], threads=threads)
    out = {labels[0]: first}
    for label in labels[1:]:
        other = copy.copy(first)
        other.decoder = create_session(decoders[label], "cpu", threads=threads)
        out[label] = other
    return out


def bench_config(name: str, args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    from segzero_edge.graphs import segmenter_io as io
    from segzero_edge.graphs.sam_preprocess import preprocess_image

    t0 = time.perf_counter()
    is_peer_config = name == args.peer_config
    model = build_model(name, args.checkpoint if is_peer_config else None)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    rng = np.random.default_rng(0)
    height, width = args.image
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    box = [width // 5, height // 5, 4 * width // 5, 4 * height // 5]
    points = [[width // 3, height // 2], [2 * width // 3, height // 2]]
    with tempfile.TemporaryDirectory(prefix=f"bench-sam2-{name}-") as tmp:
        work = args.workdir / name if args.workdir is not None else Path(tmp)
        dirs = export_all(model, work, args.precisions, args.opsets)
        gc.collect()
        export_s = time.perf_counter() - t0
        peer = (args.peer_encoder, args.peer_decoder) if args.peer_encoder is not None and is_peer_config else None
        groups = _groups(dirs, peer)
        enc_ms: dict[str, list[float]] = collections.defaultdict(list)
        dec_ms: dict[str, list[float]] = collections.defaultdict(list)
        enc_cpu: dict[str, list[float]] = collections.defaultdict(list)
        outputs: dict[str, Any] = {}
        sizes: dict[str, tuple[float | None, float | None]] = {}
        # Each pass loads one group at a time (hiera-l's fp32 encoder session alone holds
        # several GB); passes alternate the order so that drift on a shared machine evens out.
        for index in range(args.passes):
            for _group, encoder, decoders in groups if index % 2 == 0 else groups[::-1]:
                segs = _load_group(model, encoder, decoders, args.threads)
                first = next(iter(segs.values()))
                for _ in range(args.warmup):
                    embedding = first.encode(image)
                    for seg in segs.values():
                        seg.decode(embedding, box, points)
                for _ in range(args.repeats):
                    ms, embedding = _time(lambda seg=first: seg.encode(image))
                    cpu_ms = _last_cpu_ms
                    for label, seg in segs.items():
                        enc_ms[label].append(ms)
                        enc_cpu[label].append(cpu_ms)
                        for _ in range(args.decode_repeats if decoders[label] is not None or encoder is None else 0):
                            ms_dec, outputs[label] = _time(
                                lambda seg=seg, e=embedding: seg.decode(e, box, points)
                            )
                            dec_ms[label].append(ms_dec)
                for label, path in decoders.items():
                    sizes[label] = (
                        (_mb(encoder), _mb(path))
                        if encoder is not None and path is not None
                        else (None, None)
                    )
                del segs, first, embedding
                gc.collect()
        ref_masks, ref_scores = outputs["torch eager"]
        ref_best = int(np.argmax(ref_scores))
        enc_ref, dec_ref = statistics.median(enc_ms["torch eager"]), statistics.median(dec_ms["torch eager"])
        for _group, _encoder, decoders in groups:
            for label in decoders:
                enc = statistics.median(enc_ms[label])
                if label not in outputs:  # a peer encoder without its decoder
                    rows.append(
                        {"config": f"{name} ({params:.1f}M)", "backend": label, "encode_ms": enc,
                         "encode_cpu_ms": statistics.median(enc_cpu[label]),
                         "encode_x": enc_ref / enc, "enc_mb": _mb(peer[0]) if peer else None}
                    )
                    continue
                masks, scores = outputs[label]
                best = int(np.argmax(scores))
                same_weights = label != PEER or args.checkpoint is not None
                dec = statistics.median(dec_ms[label])
                rows.append(
                    {
                        "config": f"{name} ({params:.1f}M)",
                        "backend": label,
                        "encode_ms": enc,
                        "encode_cpu_ms": statistics.median(enc_cpu[label]),
                        "decode_ms": dec,
                        "encode_x": enc_ref / enc,
                        "decode_x": dec_ref / dec,
                        # A peer built from other weights has nothing to match.
                        "iou": _iou(masks[best], ref_masks[ref_best]) if same_weights else None,
                        "same": best == ref_best if same_weights else None,
                        "enc_mb": sizes[label][0],
                        "dec_mb": sizes[label][1],
                    }
                )
        pre = [_time(lambda: preprocess_image(image, io.IMAGE_SIZE, io.IMAGE_MEAN, io.IMAGE_STD)) for _ in range(5)]
        pre_ms = statistics.median(ms for ms, _ in pre)
        pre_cpu = _last_cpu_ms
        print(
            f"[{name}] numpy preprocessing alone (in every encode): {pre_ms:.1f} ms wall, {pre_cpu:.1f} ms CPU",
            flush=True,
        )
        print(
            f"[{name}] export+convert {export_s:.0f}s, timing {time.perf_counter() - t0 - export_s:.0f}s",
            flush=True,
        )
    del model
    gc.collect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configs", default="tiny,hiera-t", help="comma list: tiny, hiera-t, hiera-s, hiera-b+, hiera-l"
    )
    parser.add_argument(
        "--precisions", default="fp32,int8,fp16", help="comma list of ONNX precisions to time"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed encodes per back end and pass")
    parser.add_argument(
        "--passes", type=int, default=2, help="passes over the back ends, in alternating order"
    )
    parser.add_argument("--decode-repeats", type=int, default=5, help="timed decodes per encode")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed encode+decode per back end and pass first"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: all cores)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None,
        help="keep the exported graphs here (per config) and reuse them on the next run (default: a temp dir)",
    )
    parser.add_argument(
        "--opsets", default=None, help="comma list of export opsets to time side by side (default: the exporter's)"
    )
    parser.add_argument(
        "--peer-encoder", type=Path, default=None,
        help="another exporter's encoder ONNX (e.g. samexporter's) to time beside ours (encoder only)",
    )
    parser.add_argument(
        "--peer-decoder", type=Path, default=None,
        help="the peer's decoder ONNX (samexporter's multimask decoder inputs), timed beside ours",
    )
    parser.add_argument(
        "--peer-config", default="hiera-t", help="the config whose architecture the peer graphs have"
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=None,
        help="a Meta SAM2 checkpoint (.pt/.safetensors) for --peer-config instead of random weights "
        "(the peer's own: then every back end runs the same weights)",
    )
    parser.add_argument(
        "--image", type=int, nargs=2, default=(480, 640), metavar=("H", "W"), help="image size"
    )
    args = parser.parse_args(argv)
    args.precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if "fp32" not in args.precisions:
        args.precisions.insert(0, "fp32")
    from segzero_edge.export.segmenter import OPSET

    args.opsets = [int(o) for o in args.opsets.split(",")] if args.opsets else [OPSET]
    for flag, path in (("--peer-encoder", args.peer_encoder), ("--peer-decoder", args.peer_decoder),
                       ("--checkpoint", args.checkpoint)):
        if path is not None and not path.is_file():
            parser.error(f"{flag} {path} is not a file")
    if args.peer_decoder is not None and args.peer_encoder is None:
        parser.error("--peer-decoder needs --peer-encoder (it decodes the peer encoder's features)")
    if args.checkpoint is not None and args.peer_config not in META_TRUNK:
        parser.error(f"--checkpoint loads a Meta trunk; --peer-config must be one of {', '.join(META_TRUNK)}")
    if min(args.repeats, args.decode_repeats, args.passes) < 1:
        parser.error("--repeats, --decode-repeats and --passes must be >= 1")

    import os

    import torch

    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), cpu count {os.cpu_count()}, "
        f"image {args.image[0]}x{args.image[1]}, per back end {args.passes * args.repeats} timed encodes, "
        f"{args.passes * args.repeats * args.decode_repeats} timed decodes ({args.passes} passes), "
        f"ORT threads {args.threads or 'default'}, opsets {args.opsets}, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    for name in [c.strip() for c in args.configs.split(",") if c.strip()]:
        bench_config(name, args, rows)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print()
    print(
        "| config | backend | encode ms | encode CPU ms | decode ms | encode × torch | decode × torch | best-mask IoU vs torch | same mask | encoder MB | decoder MB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|:-:|---:|---:|")
    for r in rows:
        enc_mb = f"{r['enc_mb']:.1f}" if r["enc_mb"] is not None else "—"
        if "decode_ms" not in r:  # a peer encoder
            print(
                f"| {r['config']} | {r['backend']} | {r['encode_ms']:.1f} | {r['encode_cpu_ms']:.0f} | — | "
                f"{r['encode_x']:.2f} | — | — | — | {enc_mb} | — |"
            )
            continue
        dec_mb = f"{r['dec_mb']:.1f}" if r["dec_mb"] is not None else "—"
        iou = f"{r['iou']:.4f}" if r["iou"] is not None else "— (other weights)"
        same = "—" if r["same"] is None else "yes" if r["same"] else "no"
        print(
            f"| {r['config']} | {r['backend']} | {r['encode_ms']:.1f} | {r['encode_cpu_ms']:.0f} | {r['decode_ms']:.2f} | "
            f"{r['encode_x']:.2f} | "
            f"{r['decode_x']:.2f} | {iou} | {same} | {enc_mb} | {dec_mb} |"
        )
    peers = {r["config"]: r for r in rows if r["backend"] == PEER}
    for r in rows:
        if r["config"] in peers and r["backend"].startswith("ort ") and "decode_ms" in r:
            peer = peers[r["config"]]
            line = (
                f"{r['config']} {r['backend']}: encode {peer['encode_ms'] / r['encode_ms']:.3f}× samexporter's speed "
                f"(wall), {peer['encode_cpu_ms'] / r['encode_cpu_ms']:.3f}× (CPU time)"
            )
            if "decode_ms" in peer:
                line += f"; decode {peer['decode_ms'] / r['decode_ms']:.3f}× (wall)"
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
