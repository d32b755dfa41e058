"""Checkpoints are complete or absent: a save killed midway leaves no `checkpoint-N`, and
`--resume` (or a fresh start) takes the newest complete checkpoint, naming any incomplete one
it skipped. Each test here failed on the code before issue 13 ("Can't find a valid
checkpoint", or a fresh start refused until the folder was deleted by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("bitsandbytes")

from segzero_edge.testing import cached_tiny_models  # noqa: E402
from segzero_edge.train import checkpoints  # noqa: E402
from segzero_edge.train.config import load_config  # noqa: E402
from segzero_edge.train.trainer import _check_resume, last_checkpoint, run_training  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "train" / "configs" / "tiny_cpu.yaml"
FAST = ["synthetic_rows=4", "max_completion_length=8", "save_steps=1", "logging_steps=1", "save_total_limit=2"]


def config(out: Path, *overrides: str):
    return load_config(TINY, [f"output_dir={out}", f"model={cached_tiny_models().reasoner}", *FAST, *overrides])


def complete(folder: Path, step: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    return folder


def test_resume_takes_the_newest_complete_checkpoint_and_names_the_skipped(tmp_path, caplog):
    run = tmp_path / "run"
    complete(run / "checkpoint-2", 2)
    (run / "checkpoint-3").mkdir()  # killed before anything was written
    (run / "checkpoint-4").mkdir()
    (run / "checkpoint-4" / "adapter_model.safetensors").write_bytes(b"half")  # killed before the state
    staging = run / ".staging-checkpoint-5" / "checkpoint-5"
    staging.mkdir(parents=True)
    with caplog.at_level("WARNING", logger="segzero_edge.train"):
        found = _check_resume(config(run), resume=True)
    assert found.newest == run / "checkpoint-2" and last_checkpoint(run) == run / "checkpoint-2"
    assert [p.name for p in found.incomplete] == ["checkpoint-3", "checkpoint-4"]
    assert "checkpoint-3" in caplog.text and "checkpoint-4" in caplog.text and ".staging-checkpoint-5" in caplog.text
    # moved aside (not deleted), so the trainer never writes into a half folder again
    assert sorted(p.name for p in run.iterdir()) == [".incomplete-checkpoint-3", ".incomplete-checkpoint-4", "checkpoint-2"]


def test_a_fresh_start_is_not_blocked_by_an_incomplete_checkpoint(tmp_path, caplog):
    run = tmp_path / "run"
    (run / "checkpoint-1").mkdir(parents=True)
    with caplog.at_level("WARNING", logger="segzero_edge.train"):
        found = _check_resume(config(run), resume=False)
    assert found.newest is None and "checkpoint-1" in caplog.text
    with pytest.raises(FileNotFoundError, match=r"no complete checkpoint.*skipped incomplete"):
        (run / "checkpoint-7").mkdir()
        _check_resume(config(run), resume=True)


class Killed(BaseException):
    """Stands in for SIGKILL: nothing below it runs, no cleanup handler sees it as an error."""


def test_a_save_killed_midway_leaves_no_checkpoint_and_resume_continues(tmp_path, monkeypatch):
    from transformers import Trainer

    run = tmp_path / "run"
    real = Trainer._save_rng_state

    def dies_at_step_2(self, output_dir):
        if self.state.global_step == 2:
            (Path(output_dir) / "partial.bin").write_bytes(b"x")
            raise Killed
        return real(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_rng_state", dies_at_step_2)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.raises(Killed):
            run_training(config(run, "max_steps=3"))
        names = sorted(p.name for p in run.iterdir() if "checkpoint" in p.name)
        assert names == [".staging-checkpoint-2", "checkpoint-1"]  # no half checkpoint-2
        assert checkpoints.is_complete(run / "checkpoint-1")

        monkeypatch.setattr(Trainer, "_save_rng_state", real)
        result = run_training(config(run, "max_steps=3"), resume=True)
    finally:
        torch.set_num_threads(before)
    assert result.global_step == 3
    info = json.loads((run / "run_info.json").read_text())
    assert info["resumed_from"].endswith("checkpoint-1")
    # save_total_limit=2 rotated checkpoint-1 away once the later ones were complete
    assert sorted(p.name for p in run.iterdir() if "checkpoint" in p.name) == ["checkpoint-2", "checkpoint-3"]
    assert all(checkpoints.is_complete(run / f"checkpoint-{i}") for i in (2, 3))
    assert not (run / "checkpoint-2" / "partial.bin").exists()
