"""Camera loop: reason once, then re-segment every frame with the answer's prompts.

    python examples/camera_loop.py --frames 20                 # generated frames (no camera, no OpenCV)
    python examples/camera_loop.py --source 0 --query "the cup" # camera 0 (needs opencv-python)
    python examples/camera_loop.py --source clip.mp4 --reason-every 30

Frames come as OpenCV gives them, BGR, and are passed with channel_order="bgr". The reasoner
(the slow, variable stage) answers on the first frame, and again every --reason-every frames;
the frames between reuse its box and points with the segmenter alone (SAM2 encode + decode).
Prints per-stage latency for each frame. Generated frames are a shipped example scene,
shifted a few pixels a frame like a slowly panning camera. Exit status 0, 1 on an error, 3
when the reasoner's answer on a reasoning frame failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def generated_frames(count: int) -> tuple[Iterator[np.ndarray], str]:
    """BGR frames of the first shipped example scene, panning 3 px a frame; and its query."""
    from PIL import Image

    import segzero_edge

    root = Path(segzero_edge.__file__).parent / "assets" / "examples"
    example = json.loads((root / "examples.json").read_text())["examples"][0]
    rgb = np.asarray(Image.open(root / example["image"]).convert("RGB"))

    def frames() -> Iterator[np.ndarray]:
        for i in range(count):
            yield np.ascontiguousarray(np.roll(rgb, 3 * i, axis=1)[:, :, ::-1])  # RGB -> BGR, as OpenCV

    return frames(), example["query"]


def opencv_frames(source: str, limit: int | None) -> Iterator[np.ndarray]:
    try:
        import cv2
    except ImportError:
        sys.exit("camera_loop: --source needs OpenCV: pip install opencv-python (or use --frames N)")
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        sys.exit(f"camera_loop: cannot open --source {source}")
    n = 0
    try:
        while limit is None or n < limit:
            ok, frame = capture.read()
            if not ok:
                return
            n += 1
            yield frame
    finally:
        capture.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", type=Path, default=None, help="engine directory (default: the shipped engines)")
    parser.add_argument("--source", default=None, help="camera index or video file (needs opencv-python)")
    parser.add_argument("--frames", type=int, default=None, help="generated frames (no --source), or a cap on --source")
    parser.add_argument("--query", default=None, help="what to find (default with --frames: the example's query)")
    parser.add_argument("--reason-every", type=int, default=0, help="run the reasoner again every N frames (0: first only)")
    parser.add_argument("--max-time-s", type=float, default=None, help="reasoner budget per reasoning frame")
    parser.add_argument("--provider", default="cpu", help="cpu | cuda | tensorrt")
    args = parser.parse_args(argv)
    if args.source is None and args.frames is None:
        parser.error("give --source (camera/video) or --frames N (generated)")
    if args.frames is not None and args.frames < 1:
        parser.error(f"--frames must be >= 1, got {args.frames}")

    from segzero_edge.runtime import ReasoningSegmenter

    if args.source is None:
        frames, query = generated_frames(args.frames)
        query = args.query or query
    else:
        frames, query = opencv_frames(args.source, args.frames), args.query
        if not query:
            parser.error("--source needs --query")
    seg = ReasoningSegmenter.from_dir(args.engines, provider=args.provider, max_time_s=args.max_time_s)
    prompt = None
    status = 0
    for index, frame in enumerate(frames):
        start = time.perf_counter()
        if prompt is None or (args.reason_every and index % args.reason_every == 0):
            r = seg.segment(frame, query, channel_order="bgr")
            t = r.timings
            print(
                f"frame {index}: reason  vision={t['reasoner_vision_ms']:.1f}ms prefill={t.get('reasoner_prefill_ms', 0):.1f}ms "
                f"decode={t.get('reasoner_decode_ms', 0):.1f}ms ({t.get('tokens', 0)} tokens) "
                f"sam_encode={t.get('segmenter_encode_ms', 0):.1f}ms sam_decode={t.get('segmenter_decode_ms', 0):.1f}ms "
                f"total={t['total_ms']:.1f}ms"
            )
            if not r.ok:
                print(f"frame {index}: the reasoner's answer failed: {r.error}")
                status = 3
                continue
            prompt = (r.bbox, r.points)
            print(f"frame {index}: bbox={list(r.bbox)} points={[list(p) for p in r.points]} area={int(r.mask.sum())}")
            continue
        rgb = np.ascontiguousarray(frame[:, :, ::-1])  # the segmenter protocol takes RGB
        t0 = time.perf_counter()
        embedding = seg.segmenter.encode(rgb)
        t1 = time.perf_counter()
        masks, scores = seg.segmenter.decode(embedding, *prompt)
        t2 = time.perf_counter()
        best = int(np.argmax(scores))
        print(
            f"frame {index}: segment sam_encode={(t1 - t0) * 1e3:.1f}ms sam_decode={(t2 - t1) * 1e3:.1f}ms "
            f"total={(time.perf_counter() - start) * 1e3:.1f}ms area={int(masks[best].sum())} score={float(scores[best]):.3f}"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
