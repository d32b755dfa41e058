"""The resumable per-sample results file of `evaluate` (JSONL), and what produced it.

Line 1 is a header recording the run's provenance: the engine manifest's sha256 (or the
torch back end's sources), the data's sha256, the data format, the limit, the ignore mode,
the token budget, and the answer format with its scoring switches. A resume must match it field for field; anything else is refused
with the differing fields named (`ResultsMismatch`), because mixing two runs' samples gives
numbers that belong to neither. `restart=True` starts the file over.

Every rewrite (a fresh header, dropping a torn last line) is atomic (`safe_write`), and the
appends that follow are fsynced one line at a time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .safe_write import atomic_write_text

HEADER_KEY = "segzero_eval"
HEADER_VERSION = 1
_CHUNK = 1 << 20


class ResultsMismatch(ValueError):
    """A results file written by another run (other engines, data, limit, ...)."""


@dataclass(frozen=True)
class Provenance:
    """What produced a results file. None means "not applicable" (e.g. `engines_sha256` on
    the torch back end)."""

    engines_sha256: str | None = None
    reasoner: str | None = None
    segmenter: str | None = None
    data_sha256: str | None = None
    data_format: str | None = None
    limit: int | None = None
    ignore_mode: str | None = None
    max_new_tokens: int | None = None
    # How the samples are scored (`evaluate.format_settings`); None = not applicable.
    answer_format: str = "single"
    no_target: bool | None = None
    box_metric: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> Provenance | None:
        if not isinstance(data, dict):
            return None
        names = {f.name for f in fields(cls)}
        # Headers written before the answer-format fields existed were single-format runs;
        # they read as such, so those files still resume.
        if not set(data) <= names or not (names - _LATER_FIELDS) <= set(data):
            return None
        return cls(**data)


#: Provenance fields added after version 1 headers were first written (their defaults apply).
_LATER_FIELDS = frozenset({"answer_format", "no_target", "box_metric"})


def _hash_file(path: Path, digest: Any) -> None:
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)


def path_sha256(path: str | Path) -> str:
    """sha256 of a file, or of a folder's files (relative names, sizes and contents, sorted),
    so that any change to the data is a different fingerprint."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_file():
        _hash_file(path, digest)
        return digest.hexdigest()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        name = item.relative_to(path).as_posix().encode()
        digest.update(len(name).to_bytes(8, "little") + name + item.stat().st_size.to_bytes(8, "little"))
        _hash_file(item, digest)
    return digest.hexdigest()


def header_line(provenance: Provenance | None) -> str:
    record = {HEADER_KEY: HEADER_VERSION, "provenance": asdict(provenance) if provenance else None}
    return json.dumps(record) + "\n"


def _differences(old: Provenance | None, new: Provenance | None) -> list[str]:
    if old is None or new is None:
        return [] if old == new else [f"provenance {asdict(old) if old else None} -> {asdict(new) if new else None}"]
    return [
        f"{f.name} {getattr(old, f.name)!r} -> {getattr(new, f.name)!r}"
        for f in fields(Provenance)
        if getattr(old, f.name) != getattr(new, f.name)
    ]


def _existing_lines(out: Path, provenance: Provenance | None, restart: bool) -> list[str] | None:
    """The lines of a results file this run may resume (None: start a fresh file)."""
    if restart or not out.is_file() or out.stat().st_size == 0:
        return None
    with open(out, encoding="utf-8", errors="replace") as handle:
        lines = handle.readlines()
    try:
        header = json.loads(lines[0])
        ok = isinstance(header, dict) and header.get(HEADER_KEY) == HEADER_VERSION
    except json.JSONDecodeError:
        ok = False
    if not ok:
        raise ResultsMismatch(
            f"{out} has no segzero-eval header on its first line (written by an older version or another "
            "tool), so what produced it is unknown: pass --restart to start over, or choose another --out"
        )
    recorded = Provenance.from_dict(header.get("provenance"))
    if header.get("provenance") is not None and recorded is None:
        raise ResultsMismatch(f"{out}: unreadable provenance in its header: pass --restart or choose another --out")
    changed = _differences(recorded, provenance)
    if changed:
        raise ResultsMismatch(
            f"{out} holds results of another run ({'; '.join(changed)}): resuming would mix them; "
            "pass --restart to start over, or choose another --out"
        )
    return lines


def check(out: str | Path, provenance: Provenance | None, *, restart: bool = False) -> None:
    """Raise `ResultsMismatch` now, before any model work, if `prepare` would refuse `out`."""
    _existing_lines(Path(out), provenance, restart)


def prepare(
    out: str | Path, provenance: Provenance | None, *, restart: bool = False, keys: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Make `out` a results file of this run and return its finished sample records.

    A missing or empty file (or `restart`) gets a fresh header. An existing one must carry a
    header with the same provenance (else `ResultsMismatch`); a torn last line, left by a
    crash mid-write, is dropped by an atomic rewrite. A record is finished when it holds
    `id`, `intersection`, `union` and every one of `keys`.
    """
    out = Path(out)
    lines = _existing_lines(out, provenance, restart)
    if lines is None:
        atomic_write_text(out, header_line(provenance), "--out")
        return []
    records, good = [], [lines[0]]
    for line in lines[1:]:
        try:
            record = json.loads(line)
            for key in ("id", "intersection", "union", *keys):
                record[key]
        except (json.JSONDecodeError, KeyError, TypeError):
            break  # an interrupted write: it and anything after it are recomputed
        records.append(record)
        good.append(line if line.endswith("\n") else line + "\n")
    if len(good) != len(lines) or not lines[-1].endswith("\n"):
        atomic_write_text(out, "".join(good), "--out")
    return records
