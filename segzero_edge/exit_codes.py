"""The one table of exit statuses every `segzero-edge` command uses (a contract: scripts and
robots' supervisors branch on these numbers; `--help` prints the table)."""

from __future__ import annotations

import textwrap
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    RUNTIME_ERROR = 1
    USAGE_ERROR = 2
    QUERIES_FAILED = 3
    INTERRUPTED = 130  # 128 + SIGINT
    TERMINATED = 143  # 128 + SIGTERM


#: (status, meaning), in the order `--help` lists them.
TABLE: tuple[tuple[ExitCode, str], ...] = (
    (ExitCode.OK, "ok"),
    (ExitCode.RUNTIME_ERROR, "runtime error: the work was attempted and failed (a broken or altered engine "
     "directory, a model or I/O failure, a parity check below its bars)"),
    (ExitCode.USAGE_ERROR, "usage error: the command cannot run as given (a bad or missing option, a "
     "missing or unreadable input, an output that cannot be written); nothing was computed"),
    (ExitCode.QUERIES_FAILED, "some queries failed: `segment` finished, but at least one query gave "
     "ok=False (see its error)"),
    (ExitCode.INTERRUPTED, "interrupted by SIGINT (Ctrl-C)"),
    (ExitCode.TERMINATED, "terminated by SIGTERM (`train` saves a checkpoint first)"),
)


def help_text() -> str:
    """The table as `--help` shows it (an epilog, kept verbatim)."""
    lines = ["exit status:"]
    for code, meaning in TABLE:
        lines += textwrap.wrap(meaning, 88, initial_indent=f"  {int(code):>3}  ", subsequent_indent=" " * 7)
    return "\n".join(lines)
