"""Line reading with locations, shared by the readers."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ddro.errors import DdroError, at


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield `(line_number, line)` with line endings (LF or CRLF) removed.

    Bytes that are not UTF-8 are decoded as Latin-1, which every classic collection is close to.
    """
    try:
        with open(path, "rb") as fh:
            for line_no, raw in enumerate(fh, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    line = raw.decode("latin-1")
                yield line_no, line.rstrip("\r\n")
    except FileNotFoundError:
        raise DdroError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DdroError(f"{path}: is a directory, expected a file") from None
    except PermissionError:
        raise DdroError(f"{path}: permission denied") from None
    except OSError as exc:
        raise DdroError(f"{at(path)}: cannot read ({exc.strerror})") from None


def squash(lines: list[str]) -> str:
    """Join text lines into one string with single spaces."""
    return " ".join(" ".join(lines).split())
