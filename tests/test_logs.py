"""The library logs; the CLI shows the `ddro` loggers' records on stderr, warnings marked."""

import logging

from ddro.logs import StderrHandler, show_on_stderr


def test_the_cli_handler_writes_progress_plainly_and_marks_warnings(capsys):
    logger = logging.getLogger("ddro")
    level, handlers = logger.level, list(logger.handlers)
    try:
        show_on_stderr()
        show_on_stderr()  # once however often called
        assert sum(isinstance(h, StderrHandler) for h in logger.handlers) == 1
        logging.getLogger("ddro.some.module").info("step 3 of 9")
        logging.getLogger("ddro.some.module").warning("no split recorded")
        logging.getLogger("ddro.some.module").debug("not shown")
        assert capsys.readouterr().err.splitlines() == ["step 3 of 9", "ddro: warning: no split recorded"]
    finally:
        logger.setLevel(level)
        logger.handlers[:] = handlers
