"""`--lenient`: readers of collections, queries, qrels and runs skip a bad line instead of failing.

A reader wraps the handling of one line (or record) in `tolerated(where)`. By default that does
nothing: the line's `DdroError` ends the command, as every user error does. While a command runs
inside `skipping(True)`, the error is counted against the line's file and the line is left out;
the command then reports the count (`Skips.summary`), so that nothing is dropped unseen.

Docid tables and model folders never use it: a skipped row there would shift every docid after it.
"""

from __future__ import annotations

import contextlib
import re

from ddro.errors import DdroError

_LINE_NUMBER = re.compile(r":\d+$")


class Skips:
    """What a lenient command left out: per file, how many lines and the first problem."""

    def __init__(self):
        self.by_file: dict[str, list] = {}  # file -> [lines skipped, first message]

    def add(self, where: str, message: str, lines: int) -> None:
        # `where` is `path:line` (`errors.at`) or a path alone: the file is the part before the line.
        entry = self.by_file.setdefault(_LINE_NUMBER.sub("", where), [0, message])
        entry[0] += lines

    def summary(self) -> list[str]:
        """One line per file with skipped lines, in the order first met; one line when none."""
        if not self.by_file:
            return ["--lenient: no line skipped"]
        return [f"skipped {count} malformed line{'s' * (count != 1)} of {file} (first: {first})"
                for file, (count, first) in self.by_file.items()]


_active: Skips | None = None


@contextlib.contextmanager
def skipping(lenient: bool):
    """Yield the `Skips` of the readers run inside (None when not `lenient`: they stay strict)."""
    global _active
    if not lenient:
        yield None
        return
    previous, _active = _active, Skips()
    try:
        yield _active
    finally:
        _active = previous


@contextlib.contextmanager
def tolerated(where: str, lines: int = 1):
    """Run the handling of the line(s) at `where`; under `skipping(True)` a `DdroError` raised there
    counts `lines` skipped lines and is swallowed (the code after it in the block does not run)."""
    try:
        yield
    except DdroError as exc:
        if _active is None:
            raise
        _active.add(where, str(exc), lines)
