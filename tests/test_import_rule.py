"""The lean-runtime rule: importing the package and its runtime pulls in no torch stack."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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


# --- the layers (docs/architecture.md): which package may import which -------------------------

ROOT = Path(__file__).resolve().parents[1]
#: folder in the checkout -> the package it is installed as ([tool.setuptools.package-dir])
FOLDERS = {"segzero_edge": "segzero_edge", "runtime": "segzero_edge.runtime", "export": "segzero_edge.export",
           "train": "segzero_edge.train"}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((package, *parts))] = path
    return out


def _imports(module: str, path: Path) -> set[str]:
    """Every module `module` imports, anywhere in the file (lazy imports count), absolute names."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _violations(allowed) -> list[str]:
    bad = []
    for module, path in sorted(_modules().items()):
        for name in sorted(_imports(module, path)):
            if name.startswith("segzero_edge.") and not allowed(module, path, name):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    return bad


def _within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_core_layer_never_imports_the_back_ends():
    """segzero_edge/ (contracts, graphs, models, testing, synthetic) sits below runtime, export and
    train; only the CLI, at the top, imports them."""

    def allowed(module, path, name):
        if _within(module, "segzero_edge.cli", "segzero_edge.runtime", "segzero_edge.export", "segzero_edge.train"):
            return True
        return not _within(name, "segzero_edge.runtime", "segzero_edge.export", "segzero_edge.train")

    assert _violations(allowed) == []


def test_runtime_imports_no_exporter_trainer_torch_reference_or_cli():
    def allowed(module, path, name):
        if not _within(module, "segzero_edge.runtime"):
            return True
        return not _within(
            name, "segzero_edge.export", "segzero_edge.train", "segzero_edge.models", "segzero_edge.cli",
            "segzero_edge.testing",
        )

    assert _violations(allowed) == []


def test_exporter_imports_the_runtime_only_to_verify_and_never_the_trainer():
    def allowed(module, path, name):
        if not _within(module, "segzero_edge.export"):
            return True
        if _within(name, "segzero_edge.train", "segzero_edge.cli", "segzero_edge.testing"):
            return False
        return not _within(name, "segzero_edge.runtime") or path.name.startswith("verify")

    assert _violations(allowed) == []


def test_trainer_imports_no_runtime_exporter_cli_or_test_helpers():
    def allowed(module, path, name):
        if not _within(module, "segzero_edge.train"):
            return True
        return not _within(
            name, "segzero_edge.runtime", "segzero_edge.export", "segzero_edge.cli", "segzero_edge.testing"
        )

    assert _violations(allowed) == []


def test_the_layer_check_sees_lazy_and_relative_imports(tmp_path):
    """The checks above would pass vacuously if the import scan missed imports."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from ..runtime import providers\n    import segzero_edge.export.engine\n")
    found = _imports("segzero_edge.models.probe", probe)
    assert {"segzero_edge.runtime.providers", "segzero_edge.export.engine"} <= found
