"""How the library reports: each module logs to `logging.getLogger(__name__)` under the `ddro`
logger (info for progress, warning for warnings); the CLI shows those records on stderr."""

from __future__ import annotations

import logging
import sys


class StderrHandler(logging.Handler):
    """Writes each record to the stderr of the moment (a redirected or captured one too), a warning
    marked the way the CLI marks its errors."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            mark = "ddro: warning: " if record.levelno >= logging.WARNING else ""
            print(mark + self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def show_on_stderr(level: int = logging.INFO) -> None:
    """Send the `ddro` loggers' records of `level` and above to stderr (once however often called)."""
    logger = logging.getLogger("ddro")
    logger.setLevel(level)
    if not any(isinstance(handler, StderrHandler) for handler in logger.handlers):
        logger.addHandler(StderrHandler())
