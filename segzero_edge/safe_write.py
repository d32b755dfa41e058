"""Write an output file atomically, through symlinks, never onto something that is not a file.

Every command that writes a file (`--out`, `--json`) goes through here:

- `check_output(path)` runs before any model work: it follows a symlink chain to the file it
  names, refuses a target that exists and is not a regular file (a directory, FIFO, socket
  or device node), and proves the target's folder is writable by creating and removing a
  temp file there. A refused path is an `OutputError` (exit status 2).
- `atomic_write_bytes(path, data)` writes a temp file in the *target's* folder (so the rename
  never crosses a filesystem), fsyncs it, gives it the old file's permissions (or the umask's
  for a new one) and renames it over the target: a reader sees the old file or the new one,
  never half of one. A symlink stays a symlink and now points at the new content. Whatever
  fails, the temp file is removed.

A hard link to the old file keeps the old content (the new file is a new inode).
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from pathlib import Path


class OutputError(ValueError):
    """An output path that cannot be written as asked; the message says why and what to do."""


def _target(path: Path) -> Path:
    """The file `path` names once every symlink is followed (it may not exist yet)."""
    try:
        return Path(os.path.realpath(path))
    except OSError as exc:  # e.g. a symlink loop on some platforms
        raise OutputError(f"{path}: cannot resolve the output path ({exc})") from None


def _existing_ancestor(folder: Path) -> Path:
    while not folder.exists():
        if folder.parent == folder:
            break
        folder = folder.parent
    return folder


def _regular_target(path: Path, what: str) -> Path:
    """The real file `path` names; `OutputError` when it exists and is not a regular file."""
    target = _target(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target  # a new file (or a dangling symlink's target): fine
    except OSError as exc:
        raise OutputError(f"{what} {path}: cannot inspect {target} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, socket or device)"
        via = f" (through the symlink {path})" if target != path.absolute() else ""
        raise OutputError(f"{what} {target}{via} is {kind}; name a file to write")
    return target


def check_output(path: str | Path, what: str = "output") -> Path:
    """Refuse an output `path` that could not be written, before any work; returns the real
    file it names. Nothing is left behind (missing parent folders are not created)."""
    path = Path(path)
    target = _regular_target(path, what)
    folder = _existing_ancestor(target.parent)
    if not folder.is_dir():
        raise OutputError(f"{what} {path}: {folder} is not a directory")
    if folder != target.parent:  # the write will create the missing folders
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{what} {path}: cannot create {target.parent} ({folder} is not writable)")
        return target
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".probe")
    except OSError as exc:
        raise OutputError(f"{what} {path}: cannot write in {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return target


def check_output_dir(path: str | Path, what: str = "output directory") -> Path:
    """Refuse an output directory that could not be created where `path` names it (an
    existing non-directory there, or no write permission in the nearest existing folder),
    before any work; returns its real path."""
    path = Path(path)
    target = _target(path)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{what} {path} exists and is not a directory")
    folder = _existing_ancestor(target if target.exists() else target.parent)
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: {folder} is not a writable directory")
    return target


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported here (e.g. Windows): the rename itself is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the data itself was synced
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes, what: str = "output") -> Path:
    """Replace the file `path` names with `data`, atomically (see the module doc); returns
    the real path written. Raises `OutputError` for a target that is not a regular file."""
    target = _regular_target(Path(path), what)  # again: the path may have changed since the check
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    # 0o666 through the umask, like any new file (mkstemp would make it 0600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))  # keep a replaced file's permissions
        except FileNotFoundError:
            pass
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)
    return target


def atomic_write_text(path: str | Path, text: str, what: str = "output") -> Path:
    """`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"), what)
