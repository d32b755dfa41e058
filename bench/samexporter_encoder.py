"""The peer's SAM2 graphs for `bench/peers.py --sam2-peer` (and `bench/segmenter.py
--peer-encoder/--peer-decoder`): samexporter's own `export_sam2.py`, run on a random-weight
sam2.1 hiera-tiny. The Meta checkpoint it exported from stays beside the graphs as
`weights.pt`, so that our exporter can build its graphs from the same weights.

    python bench/samexporter_encoder.py --src /tmp/peer --out /tmp/peer_out
    python bench/peers.py --skip reasoner --sam2-peer /tmp/peer_out --threads 2

`pip install samexporter` cannot go into this project's venv: it pins torch==2.10 and
torchvision==0.25 (and PyPI's torchvision does not import beside our torch 2.13). The export
needs neither torchvision nor samexporter's pins, only sources, so --src is a folder holding:

- `sam2/`: Meta's sam2 package source (github facebookresearch/sam2, the `sam2` folder);
- `samexporter/`: samexporter's package source (github vietanhdev/samexporter), with its
  bundled `sam2_configs/`;
- hydra-core, omegaconf, antlr4-python3-runtime==4.9.3, iopath, portalocker:
  `pip install --no-deps --target SRC hydra-core omegaconf antlr4-python3-runtime==4.9.3 iopath portalocker`.

samexporter exports with the TorchScript exporter (`torch.onnx.utils.export`, opset 18), which
writes GELU as x·(1 + erf(x/√2))·0.5: the order onnxruntime's Gelu fusion matches.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

#: The checkpoint the peer graphs were exported from, kept beside them.
CHECKPOINT = "weights.pt"

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, required=True, help="folder with sam2/, samexporter/ and hydra etc.")
    parser.add_argument("--out", type=Path, required=True, help="output folder for encoder.onnx + decoder.onnx")
    parser.add_argument("--model-type", default="sam2.1_hiera_tiny", help="samexporter's --model_type")
    parser.add_argument("--config", default="sam2.1/sam2.1_hiera_t.yaml", help="its sam2_configs yaml")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args = parser.parse_args(argv)
    script = args.src / "samexporter" / "export_sam2.py"
    if not script.is_file() or not (args.src / "sam2").is_dir():
        raise SystemExit(f"--src {args.src} needs sam2/ and samexporter/export_sam2.py (see this script's doc)")
    sys.path.insert(0, str(args.src))
    import torch
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from sam2.build_sam import build_sam2

    GlobalHydra.instance().clear()
    torch.manual_seed(args.seed)
    with initialize_config_dir(config_dir=str((args.src / "samexporter" / "sam2_configs").resolve()), version_base="1.2"):
        model = build_sam2(args.config, None, device="cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.out / CHECKPOINT
    torch.save({"model": model.state_dict()}, checkpoint)
    print(f"random-weight {args.model_type}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")
    GlobalHydra.instance().clear()
    sys.argv = [
        str(script), "--checkpoint", str(checkpoint), "--model_type", args.model_type,
        "--output_encoder", str(args.out / "encoder.onnx"), "--output_decoder", str(args.out / "decoder.onnx"),
    ]
    runpy.run_path(str(script), run_name="__main__")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
