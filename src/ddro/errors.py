"""User-facing errors.

A `DdroError` is a problem with what the user gave us (a path, a line of a file, an option). The
CLI prints its message as one line and exits with status 2; it never shows a traceback for it.
"""


class DdroError(Exception):
    """A user error with a one-line message naming the file/line or value at fault."""


class OptionError(DdroError):
    """A bad setting, named by its field (`band_proportions`); the CLI names it by its flag instead
    (`--band-proportions`)."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem


def at(path, line_no: int | None = None) -> str:
    """Format a location as `path:line` (or just `path`) for error messages."""
    return f"{path}:{line_no}" if line_no is not None else str(path)


class Terminated(BaseException):
    """SIGTERM arrived: unwound like Ctrl-C (KeyboardInterrupt), so every atomic output is left as
    it was and a training saves its checkpoint first (`ddro.training.checkpoints`)."""
