"""The embedded default's recipe as one staged, resumable runner.

    python recipes/embedded/run.py --run runs/embedded            # every stage not yet done, in order
    python recipes/embedded/run.py --run runs/embedded --only sft  # one stage (its inputs must exist)
    python recipes/embedded/run.py --run /tmp/smoke --smoke        # every stage for 2 steps on tiny sizes

Stages and their settings are in `recipe.yaml`. Each stage is one script with a typed config; it
trains, saves, evaluates and writes its report last, so a stage whose report exists is done. A
killed stage resumes from its own atomic state file (`state.pt`, or TRL's checkpoints for GRPO)
when the runner is started again. Wall and CPU seconds of each stage go to RUN/times.jsonl.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent


def load_recipe(path: Path) -> dict[str, Any]:
    recipe = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    names = [s["name"] for s in recipe["stages"]]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: stage names repeat: {names}")
    for stage in recipe["stages"]:
        missing = {"name", "script", "done"} - set(stage)
        if missing:
            raise ValueError(f"{path}: stage {stage.get('name')!r} lacks {sorted(missing)}")
    unknown = set(recipe.get("smoke", {})) - set(names)
    if unknown:
        raise ValueError(f"{path}: smoke overrides for unknown stages {sorted(unknown)}")
    return recipe


def _fill(value: Any, run: Path) -> Any:
    return value.format(run=run) if isinstance(value, str) else value


def command(stage: dict[str, Any], run: Path, smoke: dict[str, Any] | None = None) -> list[str]:
    """The stage's command line: `--key value` per arg (bools as --key / --no-key), then
    `key=value` overrides (GRPO's YAML config takes those)."""
    args = {**stage.get("args", {}), **(smoke or {}).get("args", {})}
    overrides = {**stage.get("overrides", {}), **(smoke or {}).get("overrides", {})}
    cmd = [sys.executable, str(HERE / stage["script"])]
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            cmd.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            cmd += [flag, str(_fill(value, run))]
    cmd += [f"{k}={_fill(v, run)}" for k, v in overrides.items()]
    return cmd


def run_stages(recipe: dict[str, Any], run: Path, only: str | None = None, smoke: bool = False) -> int:
    names = [s["name"] for s in recipe["stages"]]
    if only is not None and only not in names:
        raise SystemExit(f"unknown stage {only!r}; stages: {', '.join(names)}")
    run.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    for stage in recipe["stages"]:
        if only is not None and stage["name"] != only:
            continue
        done = run / stage["done"]
        if done.exists() and not stage.get("always", False):
            print(f"[run] {stage['name']}: done ({done})", flush=True)
            continue
        cmd = command(stage, run, recipe.get("smoke", {}).get(stage["name"]) if smoke else None)
        print(f"[run] {stage['name']}: {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        code = subprocess.call(cmd, cwd=HERE.parents[1], env=env)
        if code != 0:
            print(f"[run] {stage['name']} failed with exit code {code} after {time.perf_counter() - start:.0f} s; "
                  f"run again to resume it", flush=True)
            return code
        if not done.exists():
            print(f"[run] {stage['name']} exited 0 but {done} is missing", flush=True)
            return 1
        print(f"[run] {stage['name']}: finished in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/embedded"), help="run directory (created)")
    parser.add_argument("--recipe", type=Path, default=HERE / "recipe.yaml", help="stages and their settings")
    parser.add_argument("--only", default=None, help="run just this stage")
    parser.add_argument("--smoke", action="store_true", help="the recipe's smoke settings: 2 steps per stage")
    args = parser.parse_args(argv)
    return run_stages(load_recipe(args.recipe), args.run.resolve(), args.only, args.smoke)


if __name__ == "__main__":
    raise SystemExit(main())
