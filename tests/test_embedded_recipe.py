"""The embedded default's recipe runs end to end: every stage of recipes/embedded/run.py for 2
steps on tiny sizes (`--smoke`), each writing its report, and a killed stage resumes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "embedded"
sys.path.insert(0, str(RECIPE))


def test_recipe_yaml_names_real_scripts_and_smoke_settings():
    from run import command, load_recipe

    recipe = load_recipe(RECIPE / "recipe.yaml")
    names = [s["name"] for s in recipe["stages"]]
    assert names == ["data", "segmenter", "vision", "digits", "features", "sft", "sft2", "sft3", "grpo", "eval", "ship"]
    for stage in recipe["stages"]:
        assert (RECIPE / stage["script"]).is_file()
        assert set(recipe["smoke"]) == set(names)
        cmd = command(stage, Path("/r"), recipe["smoke"][stage["name"]])
        assert "{run}" not in " ".join(cmd)
    sft = next(s for s in recipe["stages"] if s["name"] == "sft")
    cmd = command(sft, Path("/r"), {"args": {"steps": 2}})
    assert cmd[cmd.index("--steps") + 1] == "2" and cmd[cmd.index("--features") + 1] == "/r/features"


@pytest.mark.slow
def test_every_stage_runs_for_two_steps(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(RECIPE / "run.py"), "--run", str(run), "--smoke"],
                          cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for done in ("data/info.json", "segmenter/report.json", "vision/report.json", "digits/report.json", "features/report.json",
                 "sft/report.json", "sft2/report.json", "sft3/report.json", "grpo/grpo_report.json", "eval/summary.json", "ship/shipped.json"):
        assert (run / done).is_file(), done
    assert json.loads((run / "sft" / "report.json").read_text())["steps"] == 2
    assert (run / "package" / "engines" / "manifest.json").is_file()
    # a second start finds every stage done and runs nothing
    again = subprocess.run([sys.executable, str(RECIPE / "run.py"), "--run", str(run), "--smoke"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count(": done (") == 11


def test_resumable_state_continues_where_it_stopped(tmp_path):
    import numpy as np
    import torch
    from common import Resumable

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    state = Resumable(tmp_path / "state.pt", every_s=0)
    for _ in range(3):
        opt.zero_grad()
        model(torch.ones(1, 3)).sum().backward()
        opt.step()
        rng.random()
    state.save(3, model, opt, rng, [{"step": 3, "loss": 1.0}])
    assert not (tmp_path / "state.pt.tmp").exists()
    expected_next = rng.random()

    model2, rng2 = torch.nn.Linear(3, 2), np.random.default_rng(99)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=0.1)
    step, log = Resumable(tmp_path / "state.pt").restore(model2, opt2, rng2)
    assert step == 3 and log == [{"step": 3, "loss": 1.0}]
    assert torch.equal(model2.weight, model.weight)
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert rng2.random() == expected_next
    assert Resumable(tmp_path / "none.pt").restore(model2, opt2) == (0, [])


def test_bootstrap_gain_is_paired_and_every_later_model_gets_a_column():
    import numpy as np
    from export_and_eval import EvalConfig, bootstrap_gain, markdown

    base = [{"id": str(i), "iou": v} for i, v in enumerate(np.linspace(0.0, 1.0, 50))]
    shifted = [{"id": s["id"], "iou": s["iou"] + 0.1} for s in base]
    g = bootstrap_gain(base, shifted, resamples=500)
    # a constant paired shift has no spread: the interval collapses onto the gain
    assert g == {"gain": 0.1, "ci95": [0.1, 0.1], "n": 50}
    assert bootstrap_gain(base, base, resamples=500)["ci95"] == [0.0, 0.0]

    entry = {"giou": 0.5, "ciou": 0.5, "parsed": 1.0, "box_iou": 0.4, "n": 50, "family_giou": {}}
    gain = {"gain": 0.1, "ci95": [0.05, 0.15], "n": 50}
    result = {"splits": {"val": {"a": entry, "b": entry | {"gain_over_a": gain},
                                 "c": entry | {"gain_over_a": gain, "gain_over_b": gain | {"gain": -0.2}}}},
              "segmenter_gt_prompts": {}}
    md = markdown(result, EvalConfig(run=Path("/r"), models="a=x,b=y,c=z"))
    assert "gIoU gain over a (95% CI) | gIoU gain over b (95% CI) |" in md
    row_c = next(line for line in md.splitlines() if line.startswith("| val | c |"))
    assert row_c.endswith("| +0.1000 [+0.0500, +0.1500] | -0.2000 [+0.0500, +0.1500] |")
    table = [line for line in md.splitlines() if line.startswith("| ")][:4]  # header + 3 rows: one cell count
    assert len({line.count("|") for line in table}) == 1
    single = markdown({"splits": {"val": {"a": entry}}, "segmenter_gt_prompts": {}}, EvalConfig(run=Path("/r"), models="a=x"))
    first_table = single.split("gIoU per query family")[0]
    assert len({line.count("|") for line in first_table.splitlines() if line.startswith("|")}) == 1
