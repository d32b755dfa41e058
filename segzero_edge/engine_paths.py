"""Paths inside an engine directory: relative, normalised, and resolving inside it.

A robot loads whatever an engine directory names, so no name in a manifest (or inside an
ONNX graph) may reach outside the directory: not by `..`, not by an absolute path, not by a
symlink. Names are checked twice: lexically (`check_relative`: one canonical spelling, so a
file cannot hide behind `a/./b` or `a//b`) and on disk (`resolve_inside`: after following
every symlink, the file is a regular file under the directory's own resolved path).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

#: Longest relative name accepted; engine files have short names.
MAX_NAME_CHARS = 1024


class PathProblem(ValueError):
    """A name or file that cannot be part of an engine directory; the text says why."""


class MissingFile(PathProblem):
    """The name is fine but nothing (or a dangling symlink) is there."""


def check_relative(name: object) -> str:
    """`name` if it is a canonical relative POSIX path, else `PathProblem` with the reason.

    Canonical: non-empty, `/`-separated, no leading `/`, no `.` / `..` / empty segments, no
    backslash, drive letter, NUL or control character (so Windows and POSIX read it alike).
    """
    if not isinstance(name, str):
        raise PathProblem(f"a path must be a string, got {type(name).__name__}")
    if not name:
        raise PathProblem("a path is empty")
    if len(name) > MAX_NAME_CHARS:
        raise PathProblem(f"a path is {len(name)} characters long (limit {MAX_NAME_CHARS})")
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise PathProblem(f"path {name!r} holds a control character")
    if "\\" in name:
        raise PathProblem(f"path {name!r} holds a backslash; use '/'")
    if name.startswith("/") or (len(name) >= 2 and name[1] == ":"):
        raise PathProblem(f"path {name!r} is absolute; engine paths are relative to the engine directory")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise PathProblem(f"path {name!r} is not normalised (empty, '.' or '..' segments)")
    return name


def join_relative(folder: str, name: object) -> str:
    """`folder/name` as a canonical relative path (`folder` may be "" for the root)."""
    name = check_relative(name)
    return name if not folder else f"{check_relative(folder)}/{name}"


def parent_of(relative: str) -> str:
    """The folder part of a canonical relative path ("" at the root)."""
    parent = PurePosixPath(relative).parent.as_posix()
    return "" if parent == "." else parent


def resolve_inside(root: Path, relative: str) -> Path:
    """The real path of `root/relative`, which must be a regular file inside `root`.

    `root` must already be resolved. Symlinks are followed (a link to another file of the
    same directory is fine); a target outside `root`, a missing file, a dangling link or a
    non-regular file (FIFO, device, directory) raises `PathProblem`.
    """
    relative = check_relative(relative)
    candidate = root / relative
    try:
        real = candidate.resolve(strict=True)
    except FileNotFoundError:
        raise MissingFile(f"{relative} is missing") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop on Python < 3.13
        raise PathProblem(f"{relative} cannot be resolved: {exc}") from None
    if not real.is_relative_to(root):
        raise PathProblem(f"{relative} resolves to {real}, outside the engine directory {root}")
    try:
        mode = os.stat(real).st_mode
    except OSError as exc:
        raise PathProblem(f"{relative} cannot be read: {exc}") from None
    if not stat.S_ISREG(mode):
        raise PathProblem(f"{relative} is not a regular file")
    return real
