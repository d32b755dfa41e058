"""One writer at a time for an output: an exclusive, non-blocking lock file next to it.

`exclusive_lock(path)` holds `fcntl.flock` on `path` for the duration of a `with` block. The
kernel drops the lock when its process dies (kill -9 included), so a lock is never stale: a
second process finds it held only while the first one is alive, and then fails at once with
`LockHeld` naming the holder's pid. The lock file is removed on release; a process that
opened it just before would lock an unlinked file, so the inode is checked after locking
and the attempt retried.

Where `fcntl` is missing (Windows), the lock is an `O_EXCL` file: same refusal, but one left
by a killed process must be deleted by hand (the message says so).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


class LockHeld(RuntimeError):
    """Another live process holds the lock; the message names it and the lock file."""


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def _acquire_flock(path: Path, what: str) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(
                f"{what} is being written by another process (pid {_holder(path)}, lock {path}); "
                "wait for it to finish or choose another output"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the previous holder removed the file between our open and flock: retry


def _acquire_excl(path: Path, what: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise LockHeld(
            f"{what} is locked by {path} (pid {_holder(path)}); if no such process is running, "
            "it was killed: delete the lock file"
        ) from None


@contextmanager
def exclusive_lock(path: str | Path, what: str) -> Iterator[Path]:
    """Hold the lock file `path` (its folder must exist) while the block runs; `what` names
    the guarded output in the `LockHeld` message."""
    path = Path(path)
    fd = _acquire_flock(path, what) if fcntl is not None else _acquire_excl(path, what)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        path.unlink(missing_ok=True)  # while still holding it, so no one locks a file we remove
        os.close(fd)
