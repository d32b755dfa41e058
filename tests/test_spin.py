"""The thread-spin policy (`from_dir(spin=)`, `--spin`) reaches every onnxruntime session.

The checks read the options of the sessions that were actually created (not the arguments
passed along), so a setting dropped anywhere between the CLI and `create_session` fails them.
"""

from __future__ import annotations

import pytest

from segzero_edge.runtime.providers import DEFAULT_SPIN, SPIN_POLICIES

ALLOW = "session.intra_op.allow_spinning"
STOP = "session.force_spinning_stop"
#: policy -> (allow_spinning, force_spinning_stop) as the session options hold them
EXPECTED = {"off": ("0", None), "on": ("1", None), "run": ("1", "1")}


def _entry(session, key: str) -> str | None:
    try:
        return session.get_session_options().get_session_config_entry(key)
    except RuntimeError:  # onnxruntime raises for a key that was never set
        return None


def _sessions(seg) -> dict[str, object]:
    """Every onnxruntime session of a `ReasoningSegmenter`, by graph."""
    return {
        "vision": seg.reasoner.vision.__self__.session,  # OrtVision.features, bound
        "embed": seg.reasoner.text.embed_session,
        "decoder": seg.reasoner.text.decoder_session,
        "segmenter encoder": seg.segmenter.encoder,
        "segmenter decoder": seg.segmenter.decoder,
    }


def _spin_of(seg) -> dict[str, tuple[str | None, str | None]]:
    return {name: (_entry(s, ALLOW), _entry(s, STOP)) for name, s in _sessions(seg).items()}


def test_policies_and_default():
    assert SPIN_POLICIES == ("off", "on", "run")
    assert DEFAULT_SPIN == "off"  # measured best under load (README "Thread spinning")


@pytest.mark.parametrize("spin", SPIN_POLICIES)
def test_from_dir_spin_reaches_every_session(stub_engine, spin):
    from segzero_edge.runtime import ReasoningSegmenter

    seg = ReasoningSegmenter.from_dir(stub_engine, spin=spin, threads=1)
    assert _spin_of(seg) == dict.fromkeys(_sessions(seg), EXPECTED[spin])


def test_from_dir_default_spin_is_off_everywhere(stub_engine):
    from segzero_edge.runtime import ReasoningSegmenter

    seg = ReasoningSegmenter.from_dir(stub_engine)
    assert set(_spin_of(seg).values()) == {EXPECTED["off"]}


def test_ort_reasoner_alone_takes_the_same_setting(stub_engine):
    from segzero_edge.manifest import read_manifest
    from segzero_edge.runtime.reasoner import OrtReasoner

    meta = read_manifest(stub_engine).component("reasoner")
    r = OrtReasoner.from_dir(stub_engine / "reasoner", meta=meta, spin="run")
    for session in (r.text.embed_session, r.text.decoder_session, r.vision.__self__.session):
        assert (_entry(session, ALLOW), _entry(session, STOP)) == EXPECTED["run"]
    with pytest.raises(ValueError, match=r"spin must be one of \('off', 'on', 'run'\), got 'fast'"):
        OrtReasoner.from_dir(stub_engine / "reasoner", meta=meta, spin="fast")


@pytest.mark.parametrize(
    ("spin", "match"),
    [
        ("fast", r"spin must be one of \('off', 'on', 'run'\), got 'fast'"),
        (True, r"got True \(use 'on'\)"),
        (False, r"got False \(use 'off'\)"),
        (None, r"got None"),
    ],
)
def test_bad_spin_is_refused_before_loading(spin, match):
    from segzero_edge.runtime import ReasoningSegmenter

    with pytest.raises(ValueError, match=match):
        ReasoningSegmenter.from_dir("/nonexistent", spin=spin)


@pytest.mark.parametrize("command", ["segment", "demo", "eval"])
def test_cli_spin_reaches_from_dir(monkeypatch, stub_engine, tmp_path, command):
    """Each command passes --spin to `from_dir`, and the sessions it gets are built with it."""
    from segzero_edge.cli import build_parser
    from segzero_edge.runtime import ReasoningSegmenter, api

    built = []
    real = ReasoningSegmenter.from_dir.__func__

    class Stop(Exception):
        pass

    def spy(cls, *args, **kwargs):
        built.append(real(cls, stub_engine, spin=kwargs.get("spin", DEFAULT_SPIN)))
        raise Stop  # the sessions are what is checked; the command need not run on

    monkeypatch.setattr(api.ReasoningSegmenter, "from_dir", classmethod(spy))
    argv = {
        "segment": ["segment", "--engines", str(stub_engine), "--image", str(tmp_path / "x.png"), "--query", "q"],
        "demo": ["demo", "--engines", str(stub_engine), "--seed", "0", "--out", str(tmp_path / "demo.png")],
        "eval": ["eval", "--engines", str(stub_engine), "--data", str(tmp_path)],
    }[command]
    args = build_parser().parse_args([*argv, "--spin", "run"])
    assert args.spin == "run"
    assert build_parser().parse_args(argv).spin == DEFAULT_SPIN
    with pytest.raises(Stop):
        if command == "segment":
            from segzero_edge.cli.segment import load_segmenter

            load_segmenter(args)
        elif command == "eval":
            from segzero_edge.cli.eval import build_pipeline

            build_pipeline(args)
        else:
            args.func(args)
    assert set(_spin_of(built[0]).values()) == {EXPECTED["run"]}


def test_cli_refuses_unknown_spin_and_torch_eval_spin(capsys, tmp_path):
    from segzero_edge.cli import main
    from segzero_edge.exit_codes import ExitCode

    with pytest.raises(SystemExit) as exc:
        main(["segment", "--image", "x.png", "--query", "q", "--spin", "fast"])
    assert exc.value.code == ExitCode.USAGE_ERROR
    assert "invalid choice: 'fast'" in capsys.readouterr().err
    code = main(["eval", "--reasoner", "r", "--segmenter", "s", "--data", str(tmp_path), "--spin", "on"])
    assert code == ExitCode.USAGE_ERROR
    assert "--spin on sets onnxruntime's threads: it applies to --engines" in capsys.readouterr().err
