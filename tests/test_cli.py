from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

import segzero_edge
from segzero_edge.cli import main
from segzero_edge.dataclass_args import apply_overrides, parse_value


def test_version_and_help():
    out = subprocess.run([sys.executable, "-m", "segzero_edge", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"segzero-edge {segzero_edge.__version__}"
    out = subprocess.run([sys.executable, "-m", "segzero_edge", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: segzero-edge" in out.stdout


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: segzero-edge" in capsys.readouterr().out


@dataclasses.dataclass(frozen=True)
class _Cfg:
    lr: float = dataclasses.field(default=1e-5, metadata={"help": "learning rate"})
    steps: int = dataclasses.field(default=3, metadata={"help": "steps"})
    loss: Literal["grpo", "dapo"] = dataclasses.field(default="grpo", metadata={"help": "loss"})
    out: Path | None = dataclasses.field(default=None, metadata={"help": "dir"})
    bf16: bool = dataclasses.field(default=False, metadata={"help": "bf16"})
    skip: list[str] = dataclasses.field(default_factory=list, metadata={"help": "skip"})


def test_overrides_are_typed():
    cfg = apply_overrides(_Cfg(), ["lr=2e-4", "steps=7", "loss=dapo", "out=runs/x", "bf16=true", "skip=visual,lm_head"])
    assert cfg == _Cfg(lr=2e-4, steps=7, loss="dapo", out=Path("runs/x"), bf16=True, skip=["visual", "lm_head"])
    assert apply_overrides(cfg, ["out=none"]).out is None


@pytest.mark.parametrize(
    "item,match",
    [("nope=1", "unknown config key"), ("steps", "not key=value"), ("loss=ppo", "not one of"), ("bf16=maybe", "boolean")],
)
def test_bad_overrides_say_why(item, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(_Cfg(), [item])


def test_parse_value_int():
    with pytest.raises(ValueError):
        parse_value(int, "1.5")


def test_dataclass_options_required_and_flags():
    import argparse

    from segzero_edge.dataclass_args import add_dataclass_args, dataclass_from_args

    @dataclasses.dataclass(frozen=True)
    class Need:
        src: str = dataclasses.field(metadata={"help": "source"})
        fast: bool = dataclasses.field(default=False, metadata={"help": "go fast"})
        n: int = dataclasses.field(default=2, metadata={"help": "count"})

    parser = argparse.ArgumentParser(exit_on_error=False)
    add_dataclass_args(parser, Need)
    cfg = dataclass_from_args(Need, parser.parse_args(["--src", "a", "--fast", "--n", "5"]))
    assert cfg == Need(src="a", fast=True, n=5)
    assert dataclass_from_args(Need, parser.parse_args(["--src", "b"])) == Need(src="b")
    with pytest.raises(SystemExit):
        parser.parse_args(["--fast"])  # --src missing
