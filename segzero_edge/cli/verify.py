"""`segzero-edge verify`: prove the engines match their source models; non-zero below the bars."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "verify",
        help="compare exported engines with their PyTorch source models",
        description="Checks the manifest (sha256 of every file), then runs each exported graph side by side "
        "with its PyTorch reference on seeded random inputs: segmenter logits/mask IoU/mask choice, reasoner "
        "greedy tokens and teacher-forced top-1/logit cosine. Exits 1 when a stage is below its bars.",
    )
    parser.add_argument("--engines", type=Path, required=True, help="engine directory")
    parser.add_argument("--reasoner", default=None, help="reasoner source (default: the manifest's)")
    parser.add_argument("--segmenter", default=None, help="segmenter source: dir, Hub id or Meta checkpoint file (default: the manifest's)")
    parser.add_argument("--stage", choices=("all", "segmenter", "reasoner"), default="all", help="what to check")
    parser.add_argument("--images", type=int, default=4, help="segmenter: random images")
    parser.add_argument("--prompts", type=int, default=3, help="segmenter: prompts per image")
    parser.add_argument("--pairs", type=int, default=5, help="reasoner: image/query pairs")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="reasoner: greedy tokens per pair")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--device", default="cpu", help="torch device of the references")
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    parser.set_defaults(func=run)


def verify_dir(engines: Path, *, reasoner: str | None = None, segmenter: str | None = None, **kwargs) -> int:
    from segzero_edge.export.verify import verify_engines

    parity = verify_engines(engines, reasoner=reasoner, segmenter=segmenter, **kwargs)
    print(parity.summary())
    return 0 if parity.passed else 1


def run(args: argparse.Namespace) -> int:
    from segzero_edge.export.verify import verify_engines
    from segzero_edge.safe_write import atomic_write_text, check_output

    if args.json is not None:
        check_output(args.json, "--json")  # before any model work

    stages = ("segmenter", "reasoner") if args.stage == "all" else (args.stage,)
    parity = verify_engines(
        args.engines, reasoner=args.reasoner, segmenter=args.segmenter, stages=stages, n_images=args.images,
        n_prompts=args.prompts, n_pairs=args.pairs, max_new_tokens=args.max_new_tokens, seed=args.seed,
        device=args.device,
    )
    print(parity.summary())
    if args.json is not None:
        payload = {
            "passed": parity.passed,
            "segmenter": parity.segmenter.to_json() if parity.segmenter is not None else None,
            "reasoner": None if parity.reasoner is None else {
                "precision": parity.reasoner.precision, "exact_rate": parity.reasoner.exact_rate,
                "token_match_rate": parity.reasoner.token_match_rate, "top1": parity.reasoner.top1,
                "prefill_cosine": parity.reasoner.prefill_cosine, "min_cosine": parity.reasoner.min_cosine,
            },
        }
        atomic_write_text(args.json, json.dumps(payload, indent=2), "--json")
    return 0 if parity.passed else 1
