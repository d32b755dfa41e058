"""The lean-runtime rule: importing the package and its runtime pulls in no torch stack."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "trl", "peft", "bitsandbytes")


def _loaded_after(statement: str) -> list[str]:
    code = f"import sys\n{statement}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_runtime_import_is_torch_free():
    assert _loaded_after("import segzero_edge, segzero_edge.runtime") == []


def test_core_modules_are_torch_free():
    stmt = "import segzero_edge.prompts, segzero_edge.answer, segzero_edge.rewards, segzero_edge.metrics, segzero_edge.geometry"
    assert _loaded_after(stmt) == []


def test_multi_object_modules_are_torch_and_scipy_free():
    stmt = "import segzero_edge.rewards_multi, segzero_edge.assignment"
    assert _loaded_after(stmt) == []
    code = f"import sys\n{stmt}\nprint('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # scipy is imported only when a reward is computed


def test_cli_help_is_torch_free():
    assert _loaded_after("from segzero_edge.cli import build_parser; build_parser()") == []
