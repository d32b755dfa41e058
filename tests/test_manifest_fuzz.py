"""Mutated manifests (hypothesis, 600 examples): each one either loads the untampered stub
engine or raises `EngineError`, never anything else.

Mutations: delete a key, replace a value (wrong types, absurd numbers, non-finite floats,
traversal and absolute paths, huge strings, deep nesting), rename a file entry, swap two
values, or corrupt the JSON text. The graphs and the tokenizer are never touched, so a load
that succeeds has verified exactly the files the stub engine shipped.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segzero_edge.manifest import EngineError, file_sha256

pytest.importorskip("onnx")

EXAMPLES = 600

HOSTILE_VALUES = [
    None, True, False, 0, -1, 1, 2, 3, 7, 63, 64, 1024, 2**31, 2**63, -(2**63), 10**30, 0.5, -0.0, 1e308,
    float("inf"), float("-inf"), float("nan"), "", "x", "0", "1", "fp32", "../../etc/passwd", "/etc/passwd",
    "reasoner/../reasoner/decoder.onnx", "decoder.onnx", "encoder.onnx", "tokenizer.json", "vision.onnx",
    "a/./b", "a//b", "C:\\x", "x" * 70_000, "<|im_end|>", [], [1], [1, 2, 3], [0.5, 0.5, 0.5], ["a"], [[[]]],
    {}, {"a": 1}, {"sha256": "0" * 64, "bytes": 1}, [1602, 1600], 1612,
]


def paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path (dict keys and list indices) inside `data`, parents before children."""
    out = []
    if isinstance(data, dict):
        for key, value in data.items():
            out.append((*prefix, key))
            out.extend(paths(value, (*prefix, key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out.append((*prefix, i))
            out.extend(paths(value, (*prefix, i)))
    return out


def parent(data: Any, path: tuple) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


def mutate(data: dict, draw) -> dict:
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        keys = paths(data)
        if not keys:
            break
        path = keys[draw(st.integers(0, len(keys) - 1))]
        holder, last = parent(data, path), path[-1]
        op = draw(st.sampled_from(["delete", "replace", "replace", "wrap", "rename", "swap", "nest"]))
        if op == "delete":
            if isinstance(holder, dict):
                del holder[last]
            else:
                holder.pop(last)
        elif op == "replace":
            holder[last] = copy.deepcopy(draw(st.sampled_from(HOSTILE_VALUES)))
        elif op == "wrap":
            holder[last] = draw(st.sampled_from([[holder[last]], {"v": holder[last]}, str(holder[last])]))
        elif op == "rename" and isinstance(holder, dict):
            new = draw(st.sampled_from(["../x", "/abs", "segmenter/decoder.onnx", "reasoner/vision.onnx",
                                        "manifest.json", "a/../b", "extra", ""]))
            holder[new] = holder.pop(last)
        elif op == "swap":
            other = keys[draw(st.integers(0, len(keys) - 1))]
            other_holder = parent(data, other)
            try:
                holder[last], other_holder[other[-1]] = other_holder[other[-1]], holder[last]
            except (KeyError, IndexError):
                pass  # the other path moved inside this one: keep the first change only
        elif op == "nest":
            holder[last] = json.loads("[" * 50 + "]" * 50)
    return data


@st.composite
def manifests(draw, base: dict) -> str:
    if draw(st.integers(0, 19)) == 0:  # 5 %: corrupt the text itself
        text = json.dumps(base)
        cut = draw(st.integers(0, len(text)))
        return draw(st.sampled_from([text[:cut], text[:cut] + "\x00" + text[cut:], "[" * 3000, "nul"]))
    return json.dumps(mutate(base, draw))


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from segzero_edge.testing.stub_engine import write_stub_engine

    root = write_stub_engine(tmp_path_factory.mktemp("fuzz") / "engines")
    hashes = {p.relative_to(root).as_posix(): file_sha256(p) for p in root.rglob("*") if p.is_file()}
    return root, json.loads((root / "manifest.json").read_text()), hashes


def test_mutated_manifests_load_or_raise_engine_error(engine):
    from segzero_edge.runtime import ReasoningSegmenter

    root, base, hashes = engine
    outcomes = {"loaded": 0, "refused": 0}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(text=manifests(base))
    def check(text: str) -> None:
        (root / "manifest.json").write_text(text)
        try:
            seg = ReasoningSegmenter.from_dir(root)
        except EngineError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
            return
        outcomes["loaded"] += 1
        assert seg.reasoner is not None and seg.segmenter is not None

    check()
    # the engine files themselves were never touched
    now = {p.relative_to(root).as_posix(): file_sha256(p) for p in root.rglob("*") if p.is_file()}
    assert {k: v for k, v in now.items() if k != "manifest.json"} == {
        k: v for k, v in hashes.items() if k != "manifest.json"
    }
    print(outcomes)
    assert outcomes["loaded"] + outcomes["refused"] >= EXAMPLES
    assert outcomes["loaded"] > 0 and outcomes["refused"] > 0, outcomes


def test_mutation_covers_every_key_the_runtime_reads(engine):
    """Sanity: the strategy reaches the nested keys (dims, files entries, special tokens)."""
    _, base, _ = engine
    reached = {p for p in paths(base)}
    assert ("components", "reasoner", "dims", "num_layers") in reached
    assert any(p[0] == "files" and p[-1] == "sha256" for p in reached)
    assert ("components", "segmenter", "image_std", 2) in reached

