"""Shared pytest setup: test-tier markers and the session's tiny random-weight checkpoints."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Also declared in pyproject.toml; repeated here so the markers exist under any rootdir.
    config.addinivalue_line("markers", "slow: larger configurations, excluded from make test")
    config.addinivalue_line("markers", "gpu: needs CUDA; skipped where it is missing")
    config.addinivalue_line("markers", "trt: needs TensorRT; skipped where it is missing")


@pytest.fixture(scope="session")
def tiny_models():
    """`TinyModels(reasoner: Path, segmenter: Path)`: Hugging Face dirs, built once per machine.

    Cached under `$SEGZERO_EDGE_CACHE` (default `~/.cache/segzero-edge`) in a directory keyed
    by the builder source, library versions and seed. Treat the files as read-only.
    """
    pytest.importorskip("torch")  # building them needs torch + transformers (absent in the runtime lane)
    pytest.importorskip("transformers")
    from segzero_edge.testing import cached_tiny_models

    return cached_tiny_models(seed=0)


def _shipped_engines_present() -> bool:
    from pathlib import Path

    import segzero_edge

    return (Path(segzero_edge.__file__).parent / "assets" / "engines" / "manifest.json").is_file()


# The embedded-default tests read the shipped engines at import; a checkout that does not ship
# them yet (the trained default is produced by recipes/embedded/) has nothing for them to test.
collect_ignore = [] if _shipped_engines_present() else ["test_embedded.py"]


@pytest.fixture(scope="session")
def stub_engine(tmp_path_factory):
    """A complete engine directory with trivial graphs that loads in milliseconds
    (`segzero_edge.testing.stub_engine`); read-only: copy it (`stub_copy`) to change it."""
    pytest.importorskip("onnx")
    from segzero_edge.testing.stub_engine import write_stub_engine

    return write_stub_engine(tmp_path_factory.mktemp("stub") / "engines")


@pytest.fixture
def stub_copy(stub_engine, tmp_path):
    """A private copy of the stub engine directory, at `tmp_path/engines`."""
    import shutil

    return shutil.copytree(stub_engine, tmp_path / "engines")
