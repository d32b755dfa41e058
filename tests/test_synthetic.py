"""The synthetic shapes domain: deterministic scenes, exact masks, unique answers,
Seg-Zero-valid completions, disjoint splits, and the ReasonSeg HF layout on disk."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from segzero_edge.answer import parse_answer
from segzero_edge.cli import main
from segzero_edge.geometry import mask_bbox, reference_points
from segzero_edge.rewards import parse_solution, seg_zero
from segzero_edge.synthetic import (
    COLOURS,
    SEEN_TEMPLATES,
    SPLITS,
    TEMPLATES,
    ZEROSHOT_TEMPLATES,
    SceneConfig,
    answer_for,
    format_completion,
    generate_split,
    make_queries,
    mask_to_reasoner,
    render_scene,
    split_seed,
    split_templates,
    write_dataset,
)
from segzero_edge.synthetic.dataset import SEED_STRIDE, SPLIT_STRIDE

SEEDS = range(40)


@pytest.fixture(scope="module")
def scenes():
    return [render_scene(s) for s in SEEDS]


def test_same_seed_same_bytes_other_seed_differs():
    a, b, c = render_scene(5), render_scene(5), render_scene(6)
    assert a.image.tobytes() == b.image.tobytes() and a.labels.tobytes() == b.labels.tobytes()
    assert [(o.shape, o.colour, o.bbox) for o in a.objects] == [
        (o.shape, o.colour, o.bbox) for o in b.objects
    ]
    assert a.image.tobytes() != c.image.tobytes()


def test_masks_are_visible_disjoint_pixels_with_consistent_attributes(scenes):
    for scene in scenes:
        h, w = scene.height, scene.width
        assert scene.image.shape == (h, w, 3) and scene.image.dtype == np.uint8
        assert 2 <= len(scene.objects) <= 7
        stack = np.stack([o.mask for o in scene.objects])
        assert stack.shape == (len(scene.objects), h, w) and stack.dtype == bool
        assert stack.sum(axis=0).max() == 1  # disjoint
        np.testing.assert_array_equal(
            scene.labels, (stack * np.arange(1, len(stack) + 1)[:, None, None]).sum(0)
        )
        frac = scene.config.visible_frac
        ranks = sorted(scene.objects, key=lambda o: o.size_rank)
        assert [o.size_rank for o in ranks] == list(range(1, len(ranks) + 1))
        assert all(a.full_area >= b.full_area for a, b in itertools.pairwise(ranks))
        for o in scene.objects:
            assert o.area == o.mask.sum() >= scene.config.min_visible_px
            # visible area: at most the unoccluded area, at least the occlusion limit (pixel rounding aside)
            assert frac * o.full_area * 0.93 <= o.area <= o.full_area * 1.07 + 20
            assert o.bbox == mask_bbox(o.mask)
            x1, y1, x2, y2 = o.bbox
            assert 0 <= x1 <= x2 < w and 0 <= y1 <= y2 < h
            assert min(x2 - x1, y2 - y1) + 1 >= 0.08 * min(w, h) * (0.5 if o.area < o.full_area * 0.9 else 1)
            # the mask sits on the object's pixels: its interior has the object's colour
            interior = o.mask.copy()
            for axis in (0, 1):
                for shift in (1, -1):
                    interior &= np.roll(o.mask, shift, axis=axis)
            mean = scene.image[interior].astype(float).mean(axis=0)
            assert np.abs(mean - COLOURS[o.colour]).max() < 12, (scene.seed, o.name, mean)


def test_scene_options_and_errors():
    wide = render_scene(1, (640, 384))
    assert wide.image.shape == (384, 640, 3) and wide.objects[0].mask.shape == (384, 640)
    easy = render_scene(2, 256, config=SceneConfig(max_objects=3, difficulty=0.0))
    assert easy.image.shape == (256, 256, 3) and len(easy.objects) <= 3
    with pytest.raises(ValueError, match="difficulty"):
        SceneConfig(difficulty=1.5)
    with pytest.raises(ValueError, match="min_objects"):
        SceneConfig(min_objects=5, max_objects=3)
    with pytest.raises(ValueError, match="seed"):
        render_scene(-1)


def test_every_query_has_exactly_one_answer(scenes):
    seen: Counter[str] = Counter()
    for scene in scenes:
        queries = make_queries(scene, np.random.default_rng(scene.seed), list(TEMPLATES))
        for q in queries:
            seen[q.template] += 1
            assert q.matches(scene) == [q.target], (scene.seed, q.text)
            assert q.text and q.text == q.text.lower() and q.family == TEMPLATES[q.template].family
            assert not set(q.reasoning) & set("<>{}")
            target = scene.objects[q.target]
            assert q.reasoning.endswith(f"the {target.name}.") or f"the {target.name} " in q.reasoning
            # spot checks against the attributes, independent of the predicates
            n = len(scene.objects)
            if q.template == "unique_shape":
                assert sum(o.shape == target.shape for o in scene.objects) == 1
            if q.template == "size_extreme_all":
                assert target.size_rank == (n if "smallest" in q.text else 1)
            if q.template == "spatial_extreme_kind" and "leftmost" in q.text:
                same = [o for o in scene.objects if o.shape == target.shape]
                assert target.centroid[0] == min(o.centroid[0] for o in same)
    # 40 scenes exercise every template
    assert set(seen) == set(TEMPLATES), set(TEMPLATES) - set(seen)


def test_make_queries_rejects_unknown_template(scenes):
    with pytest.raises(KeyError, match="unknown query templates"):
        make_queries(scenes[0], np.random.default_rng(0), ["nope"])


def test_zeroshot_templates_are_held_out():
    assert set(ZEROSHOT_TEMPLATES) and not set(ZEROSHOT_TEMPLATES) & set(SEEN_TEMPLATES)
    assert set(ZEROSHOT_TEMPLATES) | set(SEEN_TEMPLATES) == set(TEMPLATES)
    for split in ("train", "val", "test"):
        assert split_templates(split) == SEEN_TEMPLATES
    assert split_templates("zeroshot") == ZEROSHOT_TEMPLATES
    assert {s.query.template for s in generate_split("zeroshot", 6, size=256)} <= set(ZEROSHOT_TEMPLATES)
    assert not {s.query.template for s in generate_split("train", 12, size=256)} & set(ZEROSHOT_TEMPLATES)


def test_split_seed_ranges_are_disjoint():
    max_base = SPLIT_STRIDE // SEED_STRIDE
    ranges = [(split_seed(s, 0, 0), split_seed(s, SEED_STRIDE - 1, max_base - 1)) for s in SPLITS]
    for (lo_a, hi_a), (lo_b, _) in itertools.pairwise(ranges):
        assert lo_a < hi_a < lo_b
    assert split_seed("train", 0, 1) == split_seed("train", SEED_STRIDE - 1, 0) + 1
    with pytest.raises(ValueError, match="unknown split"):
        split_seed("dev", 0)
    with pytest.raises(ValueError, match="scene index"):
        split_seed("train", SEED_STRIDE)
    seeds = {split: {s.scene.seed for s in generate_split(split, 3, size=256)} for split in SPLITS}
    assert all(not seeds[a] & seeds[b] for a in SPLITS for b in SPLITS if a != b)


def test_completions_parse_and_score_five():
    samples = list(generate_split("val", 8, size=320, queries_per_image=2))
    assert len(samples) == 8 and any(s.ann == 1 for s in samples)
    for s in samples:
        text = s.completion
        answer = parse_answer(text)
        assert answer.bbox == s.bbox and answer.points == s.points
        assert answer.thinking == s.query.reasoning
        assert seg_zero(text, list(s.bbox), [list(p) for p in s.points]) == 5.0
        gt = parse_solution(s.solution)
        assert gt.bbox == s.bbox and gt.points == s.points
        # the answer is the 840-space mask's box and Seg-Zero's reference points (full-image computation)
        m840 = mask_to_reasoner(s.mask)
        assert mask_bbox(m840) == s.bbox and reference_points(m840) == s.points
        assert all(m840[y, x] for x, y in s.points)


def test_generate_split_is_prefix_stable():
    short = [(s.ann_id, s.query.text) for s in generate_split("test", 3, size=256)]
    long = [(s.ann_id, s.query.text) for s in generate_split("test", 5, size=256)]
    assert long[:3] == short


def test_format_completion_exact_and_guarded():
    text = format_completion("The ring rolls.", (10, 20, 30, 40), ((15, 25), (20, 35)))
    assert (
        text
        == '<think>The ring rolls.</think><answer>{"bbox": [10,20,30,40], "points_1": [15,25], "points_2": [20,35]}</answer>'
    )
    for bad in ("a {b}", "x < y", ""):
        with pytest.raises(ValueError, match="reasoning"):
            format_completion(bad, (1, 2, 3, 4), ((1, 2), (3, 4)))
    with pytest.raises(ValueError, match="bbox"):
        format_completion("ok", (1, 2, 3), ((1, 2), (3, 4)))
    with pytest.raises(ValueError, match="empty"):
        answer_for(np.zeros((8, 8), bool))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "data"
    info = write_dataset(
        out, {"train": 5, "val": 3, "test": 3, "zeroshot": 3}, size=256, seed=1, progress=False
    )
    return out, info


def test_written_parquet_reads_back_with_pyarrow(written):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out, info = written
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "info.json",
        "test.parquet",
        "train.parquet",
        "val.parquet",
        "zeroshot.parquet",
    ]
    assert json.loads((out / "info.json").read_text()) == json.loads(json.dumps(info))
    assert {split: info["splits"][split]["rows"] for split in SPLITS} == {
        "train": 5,
        "val": 3,
        "test": 3,
        "zeroshot": 3,
    }
    assert set(info["splits"]["zeroshot"]["templates"]) <= set(ZEROSHOT_TEMPLATES)
    table = pq.read_table(out / "train.parquet")
    assert table.num_rows == 5
    assert str(table.schema.field("image").type) == "struct<bytes: binary, path: string>"
    assert table.schema.field("gt_points").type.value_type.value_type == pa.int64()
    expected = list(generate_split("train", 5, seed=1, size=256))
    for row, sample in zip(table.to_pylist(), expected, strict=True):
        image = np.array(Image.open(io.BytesIO(row["image"]["bytes"])))
        mask = np.array(Image.open(io.BytesIO(row["mask"]["bytes"])))
        np.testing.assert_array_equal(image, sample.scene.image)
        assert mask.dtype == bool and (mask == sample.mask).all()
        assert (row["img_height"], row["img_width"]) == (256, 256)
        assert row["text"] == row["problem"] == sample.query.text
        assert row["gt_bbox"] == list(sample.bbox) and row["completion"] == sample.completion
        assert seg_zero(row["completion"], row["gt_bbox"], row["gt_points"]) == 5.0
        assert parse_solution(row["solution"]).bbox == tuple(row["gt_bbox"])


def test_written_parquet_loads_with_datasets_and_eval_reader(written, tmp_path):
    datasets = pytest.importorskip("datasets")
    from segzero_edge.evaldata import read_hf_layout

    out, _ = written
    files = {split: str(out / f"{split}.parquet") for split in SPLITS}
    ds = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf"))
    item = ds["test"][0]
    assert isinstance(item["image"], Image.Image) and item["image"].size == (256, 256)
    gt = np.array(item["mask"])  # exactly what Seg-Zero's evaluation does
    assert gt.shape == (256, 256) and gt.dtype == bool and gt.any()
    assert (
        gt.sum() == np.array(item["mask"]).astype(np.uint8).sum()
    )  # 0/1, so Seg-Zero's union sums are pixel counts
    assert item["gt_points"] == [list(p) for p in parse_answer(item["completion"]).points]
    whole = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf2"))  # splits from README.md
    assert {k: v.num_rows for k, v in whole.items()} == {"train": 5, "val": 3, "test": 3, "zeroshot": 3}
    samples = list(read_hf_layout(out / "test.parquet"))
    assert len(samples) == 3 and samples[0].query == item["text"]
    np.testing.assert_array_equal(samples[0].mask, gt)


def test_write_is_atomic(written, tmp_path, monkeypatch):
    out, _ = written
    with pytest.raises(FileExistsError, match="overwrite"):
        write_dataset(out, {"val": 1}, size=256, progress=False)
    target = tmp_path / "fresh"

    def broken(*args, **kwargs):
        yield from generate_split("val", 1, size=256)
        raise RuntimeError("boom")

    monkeypatch.setattr("segzero_edge.synthetic.dataset.generate_split", broken)
    with pytest.raises(RuntimeError, match="boom"):
        write_dataset(target, {"val": 2}, size=256, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temp folder is left behind
    monkeypatch.undo()
    write_dataset(target, {"val": 1}, size=256, progress=False)
    info = write_dataset(target, {"test": 2}, size=256, progress=False, overwrite=True)
    assert (
        sorted(p.name for p in target.iterdir()) == ["README.md", "info.json", "test.parquet"]
        and info["splits"]["test"]["rows"] == 2
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh"]


def test_cli_synth_writes_and_previews(tmp_path, capsys):
    out = tmp_path / "cli"
    args = [
        "synth",
        "--out",
        str(out),
        "--train",
        "2",
        "--val",
        "1",
        "--test",
        "1",
        "--zeroshot",
        "1",
        "--size",
        "256",
        "--no-progress",
    ]
    assert main(args) == 0
    info = json.loads((out / "info.json").read_text())
    assert info["image_size"] == [256, 256] and info["splits"]["train"]["rows"] == 2
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--seed", "2"]) == 0
    assert json.loads((out / "info.json").read_text())["seed"] == 2
    png = tmp_path / "preview.png"
    assert main(["synth", "--preview", str(png), "--seed", "3", "--size", "256"]) == 0
    assert Image.open(png).width == 512 and "scene seed 3" in capsys.readouterr().out
    assert main(["synth", "--preview", str(png), "--difficulty", "3"]) == 2


def test_synthetic_stays_torch_free():
    code = "import sys, segzero_edge.synthetic, segzero_edge.cli.synth; print('torch' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
