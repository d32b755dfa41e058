"""CLI outputs and exit statuses: symlinks written through atomically, non-regular and
unwritable outputs refused before any model work (exit 2), no temp files left behind, one
exit-status table for every command and in every --help; eval results that cannot go stale.
Each test here failed on the code before issue 13."""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segzero_edge.cli import build_parser, main
from segzero_edge.exit_codes import TABLE, ExitCode, help_text
from segzero_edge.safe_write import atomic_write_bytes


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "in" / "scene.png"
    path.parent.mkdir()
    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(path)
    return path


@pytest.fixture
def no_model(monkeypatch):
    """Fail if any engine is loaded: refusals must come before model work."""
    from segzero_edge.runtime import api

    def refuse(*args, **kwargs):
        raise AssertionError("an engine was loaded before the output paths were checked")

    monkeypatch.setattr(api.ReasoningSegmenter, "from_dir", classmethod(lambda cls, *a, **k: refuse()))


def leftovers(*folders: Path) -> list[str]:
    return sorted(p.name for f in folders for p in f.iterdir() if p.name.endswith((".tmp", ".probe")))


def segment(engines: Path, image: Path, *extra: str) -> int:
    return main(["segment", "--engines", str(engines), "--image", str(image), "--query", "the cup", *extra])


def test_json_through_a_symlink_is_written_to_its_target(stub_engine, image, tmp_path):
    real_dir, link_dir = tmp_path / "real", tmp_path / "links"
    real_dir.mkdir()
    link_dir.mkdir()
    (real_dir / "r.json").write_text("old")
    os.chmod(real_dir / "r.json", 0o640)
    (link_dir / "r.json").symlink_to(real_dir / "r.json")
    assert segment(stub_engine, image, "--json", str(link_dir / "r.json")) == ExitCode.QUERIES_FAILED
    assert (link_dir / "r.json").is_symlink()  # still a link, now to the new content
    assert json.loads((real_dir / "r.json").read_text())["query"] == "the cup"
    assert os.stat(real_dir / "r.json").st_mode & 0o777 == 0o640  # the replaced file's permissions
    assert leftovers(real_dir, link_dir) == []


@pytest.mark.parametrize("kind", ["fifo", "dir", "devnull_link"])
def test_non_regular_targets_are_refused_up_front(image, tmp_path, no_model, capsys, kind):
    target = tmp_path / "out"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "dir":
        target.mkdir()
    else:
        target.symlink_to("/dev/null")  # a device node through a link: never replaced
    code = segment(Path("unused"), image, "--json", str(target))
    assert code == ExitCode.USAGE_ERROR
    assert "not a regular file" in capsys.readouterr().err or kind == "dir"
    assert leftovers(tmp_path) == []
    if kind == "fifo":
        assert target.is_fifo()
    if kind == "devnull_link":
        assert target.is_symlink() and Path("/dev/null").is_char_device()


def test_directory_target_leaves_no_temp_file(image, tmp_path, no_model, capsys):
    (tmp_path / "o.png").mkdir()
    assert segment(Path("unused"), image, "--out", str(tmp_path / "o.png")) == ExitCode.USAGE_ERROR
    assert "is a directory" in capsys.readouterr().err
    assert leftovers(tmp_path) == []


def test_unwritable_output_is_refused_before_any_model_work(image, tmp_path, no_model, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    assert segment(Path("unused"), image, "--out", str(blocker / "o.png")) == ExitCode.USAGE_ERROR
    assert "not a directory" in capsys.readouterr().err.lower()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_folder_is_refused_before_any_model_work(image, tmp_path, no_model):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert segment(Path("unused"), image, "--json", str(folder / "r.json")) == ExitCode.USAGE_ERROR
    finally:
        folder.chmod(0o700)


def test_interrupted_write_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "x.bin"
    target.write_bytes(b"old")

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and leftovers(tmp_path) == []


# -- exit statuses -------------------------------------------------------------------------------


def test_every_command_lists_the_exit_status_table():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and "segment" in a.choices)
    helps = [parser.format_help()] + [p.format_help() for p in sub.choices.values()]
    assert len(helps) >= 8
    for text in helps:
        for line in help_text().splitlines():  # verbatim, in the same order
            assert line.strip() in text
    assert [int(code) for code, _ in TABLE] == [0, 1, 2, 3, 130, 143]


@pytest.mark.parametrize(
    "argv",
    [
        ["segment", "--image", "x.png"],  # --query missing (argparse)
        ["segment", "--image", "/no/such.png", "--query", "q"],  # unreadable input
        ["segment", "--engines", "/no/such/dir", "--image", "{image}", "--query", "q"],
        ["export", "--reasoner", "a", "--segmenter", "b", "--out", "{tmp}/e", "--block-size", "7"],  # bad value
        ["eval", "--engines", "x", "--reasoner", "y", "--data", "{image}"],  # conflicting options
        ["eval", "--engines", "x", "--data", "/no/such/data.parquet"],
        ["eval", "--engines", "x", "--data", "{image}", "--restart"],  # --restart without --out
    ],
)
def test_usage_errors_exit_2(argv, image, tmp_path, no_model):
    argv = [a.format(image=image, tmp=tmp_path) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == ExitCode.USAGE_ERROR


def test_an_altered_engine_is_a_runtime_error(stub_copy, image, capsys):
    decoder = stub_copy / "segmenter" / "decoder.onnx"
    decoder.write_bytes(decoder.read_bytes()[:-1] + b"\x00")
    assert segment(stub_copy, image) == ExitCode.RUNTIME_ERROR
    assert "altered" in capsys.readouterr().err


def test_ok_and_some_queries_failed(stub_engine, image, monkeypatch):
    from fakes import BoxSegmenter, ScriptedReasoner, answer_text

    from segzero_edge.pipeline import ReasoningPipeline
    from segzero_edge.runtime import api

    assert segment(stub_engine, image) == ExitCode.QUERIES_FAILED  # the stub never answers
    scripted = ReasoningPipeline(ScriptedReasoner(answer_text([0, 0, 400, 400], [100, 100], [200, 200])), BoxSegmenter())
    monkeypatch.setattr(api.ReasoningSegmenter, "from_dir", classmethod(lambda cls, *a, **k: scripted))
    assert segment(stub_engine, image) == ExitCode.OK


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, ExitCode.TERMINATED), (signal.SIGINT, ExitCode.INTERRUPTED)])
def test_signals_give_130_and_143_and_clean_up(stub_engine, image, tmp_path, monkeypatch, signum, code):
    real_fsync = os.fsync

    def killed(fd):
        real_fsync(fd)
        os.kill(os.getpid(), signum)  # arrives while the overlay's temp file is being written

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(os, "fsync", killed)
    assert segment(stub_engine, image, "--out", str(tmp_path / "o.png")) == code
    assert leftovers(tmp_path) == [] and not (tmp_path / "o.png").exists()
    assert signal.getsignal(signal.SIGTERM) is before  # main() restores the handler it replaced


# -- eval results that cannot go stale -------------------------------------------------------------


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def parquet(path: Path, rows: int, seed: int = 0) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(seed)
    masks = [(rng.random((32, 32)) > 0.5).astype(np.uint8).tolist() for _ in range(rows)]
    table = pa.table({
        "image": [{"bytes": _png(np.full((32, 32, 3), 100 + i, np.uint8)), "path": None} for i in range(rows)],
        "text": [f"thing {i}" for i in range(rows)],
        "mask": masks,
        "image_id": [f"im{i}" for i in range(rows)],
        "ann_id": [str(i) for i in range(rows)],
    })
    pq.write_table(table, path)
    return path


def eval_cli(engines: Path, data: Path, out: Path, *extra: str) -> int:
    return main(["eval", "--engines", str(engines), "--data", str(data), "--out", str(out), *extra])


def test_eval_resume_refuses_another_limit_data_or_engines(stub_copy, tmp_path, capsys):
    data, other = parquet(tmp_path / "a.parquet", 4), parquet(tmp_path / "b.parquet", 4, seed=1)
    out = tmp_path / "r.jsonl"
    assert eval_cli(stub_copy, data, out, "--limit", "2") == ExitCode.OK
    assert eval_cli(stub_copy, data, out, "--limit", "2") == ExitCode.OK  # the same run resumes
    assert "resumed 2 samples" in capsys.readouterr().out
    assert eval_cli(stub_copy, data, out, "--limit", "3") == ExitCode.USAGE_ERROR
    assert "limit 2 -> 3" in capsys.readouterr().err
    assert eval_cli(stub_copy, other, out, "--limit", "2") == ExitCode.USAGE_ERROR
    assert "data_sha256" in capsys.readouterr().err
    manifest = json.loads((stub_copy / "manifest.json").read_text())
    manifest["created"] = "another export"
    (stub_copy / "manifest.json").write_text(json.dumps(manifest))
    assert eval_cli(stub_copy, data, out, "--limit", "2") == ExitCode.USAGE_ERROR
    assert "engines_sha256" in capsys.readouterr().err
    assert eval_cli(stub_copy, other, out, "--limit", "3", "--restart") == ExitCode.OK
    header, *records = [json.loads(line) for line in out.read_text().splitlines()]
    assert header["provenance"]["limit"] == 3 and len(records) == 3
    assert leftovers(tmp_path) == []


def test_eval_file_without_header_is_refused(stub_engine, tmp_path, capsys):
    data, out = parquet(tmp_path / "a.parquet", 2), tmp_path / "r.jsonl"
    out.write_text('{"id": "im0:0", "intersection": 1, "union": 2, "ok": true}\n')  # an old-format file
    assert eval_cli(stub_engine, data, out) == ExitCode.USAGE_ERROR
    assert "--restart" in capsys.readouterr().err


def test_eval_torn_line_is_dropped_by_an_atomic_rewrite(stub_engine, tmp_path, monkeypatch):
    from segzero_edge import eval_results

    data, out = parquet(tmp_path / "a.parquet", 3), tmp_path / "r.jsonl"
    assert eval_cli(stub_engine, data, out, "--limit", "2") == ExitCode.OK
    with open(out, "a") as handle:
        handle.write('{"id": "im9:9", "inters')
    writes = []
    real = eval_results.atomic_write_text
    monkeypatch.setattr(eval_results, "atomic_write_text", lambda *a, **k: writes.append(a[0]) or real(*a, **k))
    assert eval_cli(stub_engine, data, out, "--limit", "2") == ExitCode.OK
    assert writes == [out] and len(out.read_text().splitlines()) == 3


# -- export: stale partial folders, one export per --out ----------------------------------------------


@pytest.fixture
def fake_exporters(monkeypatch):
    """Exporters that write one small file each, and count calls."""
    pytest.importorskip("torch")
    import segzero_edge.export.reasoner as reasoner_mod
    import segzero_edge.export.segmenter as segmenter_mod

    calls = []

    def fake(kind):
        def export(src, out_dir, **kwargs):
            calls.append(kind)
            Path(out_dir).mkdir(parents=True)
            (Path(out_dir) / f"{kind}.bin").write_bytes(b"x")
            return {"precision": "fp32"}

        return export

    monkeypatch.setattr(reasoner_mod, "export_reasoner", fake("reasoner"))
    monkeypatch.setattr(segmenter_mod, "export_segmenter", fake("segmenter"))
    return calls


def export_cli(out: Path, *extra: str) -> int:
    return main(["export", "--reasoner", "r", "--segmenter", "s", "--out", str(out), *extra])


def test_stale_partial_export_is_removed_and_reported(tmp_path, fake_exporters, caplog):
    stale = tmp_path / ".engines.partial-abc123"
    (stale / "reasoner").mkdir(parents=True)
    (stale / "reasoner" / "vision.onnx").write_bytes(b"half")
    with caplog.at_level("WARNING", logger="segzero_edge.export"):
        assert export_cli(tmp_path / "engines") == ExitCode.OK
    assert not stale.exists() and "left by an export that was killed" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engines"]  # no lock, no partial left


def test_a_second_concurrent_export_to_the_same_out_fails_clearly(tmp_path, fake_exporters, capsys):
    import subprocess
    import sys
    import time

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from segzero_edge.file_lock import exclusive_lock\n"
         f"with exclusive_lock({str(tmp_path / '.engines.lock')!r}, 'x'):\n"
         "    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert export_cli(tmp_path / "engines") == ExitCode.USAGE_ERROR
        err = capsys.readouterr().err
        assert "being written by another process" in err and f"pid {holder.pid}" in err
        assert fake_exporters == []  # refused before any model work
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert export_cli(tmp_path / "engines") == ExitCode.OK  # the kernel released the dead holder's lock
