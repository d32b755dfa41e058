"""What robot code relies on, through the shipped engines and the torch-free runtime: camera
frames in either channel order, streaming, a wall-clock budget, a repetition stop, settings
passed through `from_dir`, and one instance shared by threads. Runs in both test lanes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import segzero_edge
from segzero_edge.images import ImageError, load_image

pytest.importorskip("onnxruntime")

# the shipped reasoner's grounded answers run to ~400 tokens; its figures use 512 (expected.json)
MAX_NEW_TOKENS = 512


@pytest.fixture(scope="module")
def example() -> tuple[np.ndarray, str]:
    root = Path(segzero_edge.__file__).parent / "assets" / "examples"
    first = json.loads((root / "examples.json").read_text())["examples"][0]
    return np.asarray(Image.open(root / first["image"]).convert("RGB")), first["query"]


@pytest.fixture(scope="module")
def seg():
    from segzero_edge.runtime import ReasoningSegmenter

    try:
        return ReasoningSegmenter.from_dir(provider="cpu", max_new_tokens=MAX_NEW_TOKENS)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


# -- camera frames ---------------------------------------------------------------------------


def test_bgr_arrays_are_read_as_rgb_when_told():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    assert np.array_equal(load_image(bgr, channel_order="bgr"), rgb)
    assert np.array_equal(load_image(rgb, channel_order="rgb"), rgb)
    rgba = np.dstack([rgb, np.full((5, 7), 255, np.uint8)])
    bgra = np.dstack([bgr, rgba[:, :, 3]])
    assert np.array_equal(load_image(bgra, channel_order="bgr"), load_image(rgba))
    gray = rgb[:, :, 0]
    assert np.array_equal(load_image(gray, channel_order="bgr"), load_image(gray))  # one channel: no order
    assert not np.array_equal(load_image(bgr), rgb)  # the default is RGB: a BGR frame needs the keyword


def test_bgr_is_refused_where_pillow_decodes(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (4, 4), (255, 0, 0)).save(path)
    for image in (path, str(path), path.read_bytes(), Image.open(path)):
        with pytest.raises(ImageError, match="applies to numpy arrays"):
            load_image(image, channel_order="bgr")
    with pytest.raises(ImageError, match=r"channel_order must be one of \('rgb', 'bgr'\), got 'BGR'"):
        load_image(np.zeros((4, 4, 3), np.uint8), channel_order="BGR")


def test_an_opencv_frame_gives_the_rgb_answer(seg, example):
    image, query = example
    rgb = seg.segment(image, query)
    bgr = seg.segment(np.ascontiguousarray(image[:, :, ::-1]), query, channel_order="bgr")
    assert rgb.ok and bgr.ok
    assert (bgr.bbox, bgr.points, bgr.answer_text) == (rgb.bbox, rgb.points, rgb.answer_text)
    assert np.array_equal(bgr.mask, rgb.mask)
    many = seg.segment_many(np.ascontiguousarray(image[:, :, ::-1]), [query], channel_order="bgr")
    assert many[0].bbox == rgb.bbox


# -- latency control ---------------------------------------------------------------------------


def _feed(watch, ids):
    for n, token in enumerate(ids, 1):
        reason = watch.step(token)
        if reason is not None:
            return n, reason
    return None, None


@pytest.mark.parametrize("period", [1, 2, 7, 20, 64])
def test_repetition_stop_fires_where_documented(period):
    from segzero_edge.stopping import RepetitionStop, StopWatch

    rule = RepetitionStop()
    prefix = list(range(1000, 1030))  # 30 distinct tokens
    block = list(range(period))
    n, reason = _feed(StopWatch(repetition=rule), prefix + block * 200)
    # the loop's tokens must cover max(min_span, min_repeats x period)
    assert n == len(prefix) + max(rule.min_span, rule.min_repeats * period)
    assert f"a {period}-token block repeated" in reason


def test_repetition_stop_leaves_other_text_alone():
    from segzero_edge.stopping import RepetitionStop, StopWatch

    rng = np.random.default_rng(0)
    assert _feed(StopWatch(repetition=RepetitionStop()), rng.integers(0, 1000, 5000).tolist()) == (None, None)
    # a block longer than max_period is not looked for; three repeats are not four
    assert _feed(StopWatch(repetition=RepetitionStop(max_period=8)), list(range(9)) * 50)[0] is None
    assert _feed(StopWatch(repetition=RepetitionStop(min_span=2)), [5, 6, 7] * 3)[0] is None
    assert _feed(StopWatch(repetition=RepetitionStop(min_span=2)), [5, 6, 7] * 4)[0] == 12


def test_repetition_stop_never_cuts_a_real_completion():
    from segzero_edge.runtime.tokenizer import PromptTokenizer
    from segzero_edge.stopping import RepetitionStop, StopWatch
    from segzero_edge.synthetic import generate_split

    pytest.importorskip("scipy")
    root = segzero_edge.default_engines()
    meta = json.loads((root / "manifest.json").read_text())["components"]["reasoner"]
    tokenizer = PromptTokenizer.from_file(root / "reasoner" / meta["files"]["tokenizer"], meta).tokenizer
    for sample in generate_split("test", 24, size=128):
        ids = tokenizer.encode(sample.completion, add_special_tokens=False).ids
        assert _feed(StopWatch(repetition=RepetitionStop()), ids) == (None, None), sample.completion


def test_time_budget_and_bad_settings():
    import time

    from segzero_edge.stopping import RepetitionStop, StopWatch

    n, reason = _feed(StopWatch(max_time_s=0.5, start=time.perf_counter() - 1.0), [1, 2, 3])
    assert n == 1 and reason.startswith("time budget of 0.5 s ran out after 1 tokens")
    assert _feed(StopWatch(max_time_s=60.0), list(range(100))) == (None, None)
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="max_time_s must be > 0"):
            StopWatch(max_time_s=bad)
    with pytest.raises(ValueError, match="min_repeats must be >= 2"):
        RepetitionStop(min_repeats=1)


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    """An image unlike the shipped reasoner's training scenes: an all-black frame, on which it
    degenerates into one repeated token (the sft2 reasoner from its start, the sft3 one after
    ~230 tokens of babble) and would run to the token budget without the repetition stop."""
    return np.zeros((480, 640, 3), np.uint8)


def test_a_runaway_answer_is_cut_and_streamed(seg, noise):
    streamed: list[tuple[int, str]] = []
    r = seg.segment(noise, "the object used for cutting", on_token=lambda t, text: streamed.append((t, text)))
    assert not r.ok and r.error.startswith("decoding stopped early: repetition stop")
    tokens = r.timings["tokens"]
    assert isinstance(tokens, int) and tokens == len(streamed) < MAX_NEW_TOKENS  # cut before the budget
    assert f"(cut after {tokens} tokens;" in r.error
    assert streamed[-1][1] == r.answer_text  # the partial text is kept
    assert r.mask is None


def test_a_time_budget_stops_decoding(seg, noise):
    r = seg.segment(noise, "the object used for cutting", max_time_s=1e-6)
    assert not r.ok and "time budget of 1e-06 s ran out after 1 tokens" in r.error
    assert r.timings["tokens"] == 1 and r.answer_text != ""
    with pytest.raises(ValueError, match="max_time_s must be a positive number"):
        seg.segment(noise, "x", max_time_s=0)


def test_controls_need_a_reasoner_that_takes_them():
    from fakes import BoxSegmenter, ScriptedReasoner, answer_text

    from segzero_edge.pipeline import ReasoningPipeline

    pipe = ReasoningPipeline(ScriptedReasoner(answer_text([1, 1, 5, 5], [2, 2], [3, 3])), BoxSegmenter())
    assert pipe.segment(np.zeros((8, 8, 3), np.uint8), "x").ok  # the default repetition stop is best effort
    with pytest.raises(TypeError, match=r"ScriptedReasoner.generate takes no \['on_token'\]"):
        pipe.segment(np.zeros((8, 8, 3), np.uint8), "x", on_token=print)


def test_the_cli_prints_a_few_lines_of_a_runaway(capsys):
    from segzero_edge.cli.segment import MAX_PRINT_LINES, clip_text, print_result
    from segzero_edge.pipeline import Result

    runaway = "<think>" + " on star" * 400
    print_result(Result(ok=False, query="q", error="decoding stopped early: ...", answer_text=runaway, timings={"tokens": 801}))
    out = capsys.readouterr().out
    answer = out[out.index("answer:") : out.index("FAILED:")]
    assert answer.count("\n") == MAX_PRINT_LINES and "more characters; --json keeps the full text" in answer
    assert "tokens=801" in out
    assert clip_text("short answer") == "short answer"


# -- settings passed through, threads ----------------------------------------------------------


def test_from_dir_passes_session_settings_to_every_graph(monkeypatch, tmp_path):
    from segzero_edge.runtime import ReasoningSegmenter, api, providers
    from segzero_edge.runtime import reasoner as reasoner_mod
    from segzero_edge.runtime import segmenter as segmenter_mod
    from segzero_edge.runtime import vision as vision_mod

    calls = []
    real = providers.create_session

    def recording(path, provider="cpu", *, threads=None, spin=None, **options):
        calls.append((Path(path).name, provider, threads, options))
        return real(path, "cpu", threads=threads, spin=spin)  # the GPU providers are not installed here

    monkeypatch.setattr(api, "check_provider", lambda provider: None)
    for module in (reasoner_mod, segmenter_mod, vision_mod):
        monkeypatch.setattr(module, "create_session", recording)
    cache = tmp_path / "trt-cache"
    seg = ReasoningSegmenter.from_dir(provider="tensorrt", threads=1, device_id=1, trt_fp16=True, trt_cache_dir=cache)
    assert sorted(c[0] for c in calls) == ["decoder.onnx", "decoder.onnx", "embed.onnx", "encoder.onnx", "vision.onnx"]
    for _, provider, threads, options in calls:
        assert (provider, threads, options) == (
            "tensorrt", 1, {"device_id": 1, "trt_fp16": True, "trt_cache_dir": cache}
        )
    assert seg.segmenter.encoder.get_session_options().intra_op_num_threads == 1
    assert seg.reasoner.text.decoder_session.get_session_options().intra_op_num_threads == 1
    calls.clear()
    ReasoningSegmenter.from_dir(provider="cpu", threads=2)
    assert {(c[1], c[2], tuple(c[3])) for c in calls} == {("cpu", 2, ())}  # no GPU options on the CPU


def test_tensorrt_provider_options_keep_engines_and_timing_cache(monkeypatch, tmp_path):
    from segzero_edge.runtime import providers

    monkeypatch.setattr(providers, "check_provider", lambda provider: None)
    cache = tmp_path / "cache"
    got = providers.execution_providers("tensorrt", device_id=2, trt_fp16=True, trt_cache_dir=cache)
    assert got == [
        ("TensorrtExecutionProvider", {
            "device_id": 2, "trt_fp16_enable": True,
            "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache),
        }),
        ("CUDAExecutionProvider", {"device_id": 2}),
        "CPUExecutionProvider",
    ]
    assert cache.is_dir()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threads": 0}, "threads must be a positive integer"),
        ({"device_id": -1}, "device_id must be a GPU index"),
        ({"device_id": 1}, "applies to provider 'cuda' or 'tensorrt'"),
        ({"trt_fp16": True}, "apply to provider='tensorrt'"),
        ({"max_time_s": 0}, "max_time_s must be a positive number"),
    ],
)
def test_bad_settings_are_refused_before_loading(kwargs, match):
    from segzero_edge.runtime import ReasoningSegmenter

    with pytest.raises(ValueError, match=match):
        ReasoningSegmenter.from_dir("/nonexistent", provider="cpu", **kwargs)


def test_threads_share_one_instance_with_identical_results(seg, example):
    from concurrent.futures import ThreadPoolExecutor

    image, query = example
    queries = [query, "the red circle"]
    alone = [seg.segment(image, q) for q in queries]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda q: seg.segment(image, q), queries * 2))
    for a, b in zip(alone * 2, together, strict=True):
        assert (a.ok, a.answer_text, a.bbox, a.points, a.score) == (b.ok, b.answer_text, b.bbox, b.points, b.score)
        assert (a.mask is None and b.mask is None) or np.array_equal(a.mask, b.mask)
