"""Generate argparse options and `key=value` overrides from typed dataclass configs (used by the
CLI, `segzero_edge.train` and the recipes).

Configs are the single source of truth: every field carries its help text in
`field(metadata={"help": ...})`, and the CLI is derived from them, never copied by hand.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

T = TypeVar("T")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def parse_value(tp: Any, text: str) -> Any:
    """Convert one command-line string to a field's declared type."""
    tp, optional = _unwrap_optional(tp)
    if optional and text.lower() in ("none", "null", ""):
        return None
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        for choice in choices:
            if str(choice) == text:
                return choice
        raise ValueError(f"{text!r} is not one of {', '.join(map(str, choices))}")
    if tp is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{text!r} is not a boolean (true/false)")
    if origin in (list, tuple):
        (inner, *_) = get_args(tp) or (str,)
        items = [parse_value(inner, part.strip()) for part in text.split(",") if part.strip()]
        return items if origin is list else tuple(items)
    if tp in (int, float, str, Path):
        return tp(text)
    raise TypeError(f"unsupported config field type {tp!r}")


def field_help(f: dataclasses.Field) -> str:
    return str(f.metadata.get("help", ""))


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, *, prefix: str = "") -> None:
    """Add one `--name` option per field of `cls` (underscores become dashes)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        inner, _ = _unwrap_optional(tp)
        kwargs: dict[str, Any] = {"dest": f"{prefix}{f.name}", "default": argparse.SUPPRESS}
        if get_origin(inner) is Literal:
            kwargs["choices"] = [str(c) for c in get_args(inner)]
        help_text = field_help(f)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
        if required:
            kwargs["required"] = True
            kwargs["help"] = help_text
        else:
            kwargs["help"] = f"{help_text} (default: {default})" if help_text else f"(default: {default})"
        if inner is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = lambda text, _tp=tp: parse_value(_tp, text)
            kwargs["metavar"] = f.name.upper() if "choices" not in kwargs else None
        parser.add_argument(f"--{prefix.replace('_', '-')}{f.name.replace('_', '-')}", **kwargs)


def dataclass_from_args(cls: type[T], args: argparse.Namespace, *, prefix: str = "", **base: Any) -> T:
    """Build `cls` from parsed options (only those given) on top of `base` values."""
    values = dict(base)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f"{prefix}{f.name}"
        if hasattr(args, key):
            values[f.name] = getattr(args, key)
    return cls(**values)


def apply_overrides(config: T, overrides: list[str]) -> T:
    """Return a copy of `config` with `key=value` strings applied (types from the dataclass)."""
    hints = typing.get_type_hints(type(config))
    names = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value")
        if key not in names:
            raise ValueError(f"unknown config key {key!r}; known: {', '.join(sorted(names))}")
        try:
            changes[key] = parse_value(hints[key], text)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad value for {key}: {exc}") from exc
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]
