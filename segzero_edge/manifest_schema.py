"""What a readable `manifest.json` looks like: types, ranges and paths, checked key by key.

`validate(data)` raises `SchemaError(key_path, problem)` for the first value the runtime
could not use (a missing key, a wrong type, an absurd size or count, a path that is not a
canonical relative name), so that a malformed manifest is one line naming the key, never a
`KeyError` deep in a loader. Keys the runtime never reads are not checked: exporters may add
records (and other components) freely.

The bounds are far above any real model (Qwen2.5-VL-72B has 80 layers, 8192 hidden) and far
below what would exhaust a robot's memory when the runtime allocates from them.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .engine_paths import PathProblem, check_relative
from .graphs.reasoner_prompt import PARSERS
from .prompts import ANSWER_FORMATS

#: Most files an engine directory may list.
MAX_FILES = 10_000
#: Largest single file accepted (1 TiB): anything above is a corrupt size, not a model.
MAX_FILE_BYTES = 1 << 40
#: Longest prompt string (prefix, suffix, template) accepted.
MAX_PROMPT_CHARS = 1 << 16
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: (key, low, high) for the reasoner's integer dimensions.
_REASONER_DIMS = (
    ("num_layers", 1, 1024),
    ("kv_heads", 1, 1024),
    ("head_dim", 1, 4096),
    ("hidden", 1, 1 << 17),
    ("spatial_merge_size", 1, 64),
)
_REASONER_FILES = ("vision", "embed", "decoder", "tokenizer")
_SEGMENTER_FILES = ("encoder", "decoder")
MAX_TOKEN_ID = (1 << 31) - 1
#: Key-path endings of the files ONNX Runtime opens as graphs (their external data is checked).
GRAPH_ROLES = (
    "reasoner.files.vision",
    "reasoner.files.embed",
    "reasoner.files.decoder",
    "segmenter.files.encoder",
    "segmenter.files.decoder",
)


class SchemaError(ValueError):
    """`key` (a dotted path such as `components.reasoner.dims.num_layers`) holds an unusable value."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


def describe(value: Any) -> str:
    """A short one-line rendering of a bad value for error messages."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def mapping(data: Any, key: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SchemaError(key, f"must be a JSON object, got {describe(data)}")
    return data


def child(parent: dict[str, Any], name: str, key: str) -> Any:
    if name not in parent:
        raise SchemaError(f"{key}.{name}" if key else name, "is missing")
    return parent[name]


def integer(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SchemaError(key, f"must be an integer in [{low}, {high}], got {describe(value)}")
    return value


def number(value: Any, key: str, low: float = -math.inf, high: float = math.inf) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not low <= value <= high:
        raise SchemaError(key, f"must be a finite number in [{low}, {high}], got {describe(value)}")
    return float(value)


def text(value: Any, key: str, max_chars: int = MAX_PROMPT_CHARS) -> str:
    if not isinstance(value, str) or len(value) > max_chars:
        raise SchemaError(key, f"must be a string of at most {max_chars} characters, got {describe(value)}")
    return value


def path(value: Any, key: str) -> str:
    try:
        return check_relative(value)
    except PathProblem as exc:
        raise SchemaError(key, str(exc)) from None


def _optional(parent: dict[str, Any], name: str, key: str, check) -> None:
    if name in parent:
        check(parent[name], f"{key}.{name}")


def _files(data: dict[str, Any]) -> None:
    files = mapping(child(data, "files", ""), "files")
    if not files:
        raise SchemaError("files", "lists no files: the manifest verifies nothing")
    if len(files) > MAX_FILES:
        raise SchemaError("files", f"lists {len(files)} files (limit {MAX_FILES})")
    for name, entry in files.items():
        key = f"files.{name}"
        path(name, f"files[{name!r}]")
        if name == "manifest.json":
            raise SchemaError(key, "the manifest cannot list itself")
        entry = mapping(entry, key)
        digest = child(entry, "sha256", key)
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise SchemaError(f"{key}.sha256", f"must be 64 lower-case hex digits, got {describe(digest)}")
        integer(child(entry, "bytes", key), f"{key}.bytes", 0, MAX_FILE_BYTES)


def _file_roles(meta: dict[str, Any], key: str, roles: tuple[str, ...]) -> None:
    files = mapping(child(meta, "files", key), f"{key}.files")
    seen: dict[str, str] = {}
    for role in roles:
        name = path(child(files, role, f"{key}.files"), f"{key}.files.{role}")
        if name in seen:
            raise SchemaError(f"{key}.files.{role}", f"names the same file as {key}.files.{seen[name]} ({name})")
        seen[name] = role


def _token_ids(value: Any, key: str) -> None:
    ids = value if isinstance(value, list) else [value]
    if not ids or len(ids) > 64:
        raise SchemaError(key, f"must be a token id or a list of 1 to 64 ids, got {describe(value)}")
    for i, token in enumerate(ids):
        integer(token, f"{key}[{i}]" if isinstance(value, list) else key, 0, MAX_TOKEN_ID)


def _reasoner(meta: Any) -> None:
    key = "components.reasoner"
    meta = mapping(meta, key)
    _file_roles(meta, key, _REASONER_FILES)
    dims = mapping(child(meta, "dims", key), f"{key}.dims")
    for name, low, high in _REASONER_DIMS:
        integer(child(dims, name, f"{key}.dims"), f"{key}.dims.{name}", low, high)
    prompt = mapping(child(meta, "prompt", key), f"{key}.prompt")
    for name in ("prefix", "suffix", "user_template", "question_normalization"):
        text(child(prompt, name, f"{key}.prompt"), f"{key}.prompt.{name}")
    _optional(prompt, "answer_format", f"{key}.prompt", _answer_format)
    if "parser" in prompt:
        fmt = prompt.get("answer_format", "single")
        if prompt["parser"] != PARSERS[fmt]:
            raise SchemaError(
                f"{key}.prompt.parser",
                f"must be {PARSERS[fmt]!r} for the {fmt!r} answer format, got {describe(prompt['parser'])}",
            )
    special = mapping(child(meta, "special_tokens", key), f"{key}.special_tokens")
    if len(special) > 256:
        raise SchemaError(f"{key}.special_tokens", f"lists {len(special)} entries (limit 256)")
    for name in ("image_pad", "eos"):
        child(special, name, f"{key}.special_tokens")
    for name, value in special.items():
        _token_ids(value, f"{key}.special_tokens.{name}")
    if "preprocess" in meta:
        pre = mapping(meta["preprocess"], f"{key}.preprocess")
        _optional(pre, "resize", f"{key}.preprocess", lambda v, k: integer(v, k, 28, 8192))
    if "generation" in meta:
        gen = mapping(meta["generation"], f"{key}.generation")
        _optional(gen, "repetition_penalty", f"{key}.generation", lambda v, k: number(v, k, 1e-3, 100.0))
    _optional(meta, "precision", key, _precision)


def _answer_format(value: Any, key: str) -> None:
    if value not in ANSWER_FORMATS:
        raise SchemaError(key, f"must be one of {', '.join(ANSWER_FORMATS)}, got {describe(value)}")


def _precision(value: Any, key: str) -> None:
    for name, item in mapping(value, key).items():
        text(item, f"{key}.{name}", 16)


def _segmenter(meta: Any) -> None:
    key = "components.segmenter"
    meta = mapping(meta, key)
    _file_roles(meta, key, _SEGMENTER_FILES)
    integer(child(meta, "image_size", key), f"{key}.image_size", 1, 1 << 14)
    integer(child(meta, "low_res_size", key), f"{key}.low_res_size", 1, 1 << 14)
    number(child(meta, "mask_threshold", key), f"{key}.mask_threshold")
    for name, low in (("image_mean", -math.inf), ("image_std", 1e-6)):
        values = child(meta, name, key)
        if not isinstance(values, list) or len(values) != 3:
            raise SchemaError(f"{key}.{name}", f"must be a list of 3 numbers, got {describe(values)}")
        for i, v in enumerate(values):
            number(v, f"{key}.{name}[{i}]", low)
    _optional(meta, "max_points", key, lambda v, k: integer(v, k, 0, 1 << 16))
    _optional(meta, "precision", key, _precision)


def _trt(meta: Any) -> None:
    key = "components.trt"
    meta = mapping(meta, key)
    for name in ("tensorrt", "gpu", "built"):
        if name in meta:
            text(meta[name], f"{key}.{name}", 256)
    if meta.get("segmenter"):
        plans = mapping(meta["segmenter"], f"{key}.segmenter")
        _file_roles({"files": plans}, f"{key}.segmenter", _SEGMENTER_FILES)


#: Component name -> its checker; components not named here are not read by the runtime.
COMPONENTS = {"reasoner": _reasoner, "segmenter": _segmenter, "trt": _trt}
#: Where each component's file names are relative to, inside the engine directory.
COMPONENT_FOLDERS = {"reasoner": "reasoner", "segmenter": "segmenter", "trt": "trt"}


def component_files(components: dict[str, Any]) -> dict[str, str]:
    """`{"components.<c>.files.<role>": "<folder>/<name>"}` for every file a component names
    (call after `validate`)."""
    out: dict[str, str] = {}
    for name in ("reasoner", "segmenter"):
        if name in components:
            for role, file in components[name]["files"].items():
                if role in (_REASONER_FILES if name == "reasoner" else _SEGMENTER_FILES):
                    out[f"components.{name}.files.{role}"] = f"{COMPONENT_FOLDERS[name]}/{file}"
    plans = components.get("trt", {}).get("segmenter") or {}
    for role in _SEGMENTER_FILES:
        if role in plans:
            out[f"components.trt.segmenter.{role}"] = f"trt/{plans[role]}"
    return out


def validate(data: Any) -> None:
    """Raise `SchemaError` for the first unusable value the runtime would read."""
    data = mapping(data, "(top level)")
    version = child(data, "format_version", "")
    if isinstance(version, bool) or not isinstance(version, int):
        raise SchemaError("format_version", f"must be an integer, got {describe(version)}")
    components = mapping(child(data, "components", ""), "components")
    _files(data)
    for name, check in COMPONENTS.items():
        if name in components:
            check(components[name])
    if "sources" in data:
        for name, value in mapping(data["sources"], "sources").items():
            text(value, f"sources.{name}", 4096)
