"""Line reading with locations, shared by the readers; a file ending in `.gz` is read as it is,
decompressed while it streams."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterator

from ddro.errors import DdroError, at


GZIP = ".gz"


def open_binary(path: Path):
    """`path` opened for reading bytes, through gzip when its name ends in `.gz`."""
    return gzip.open(path, "rb") if str(path).endswith(GZIP) else open(path, "rb")


def present(folder: Path, name: str) -> Path | None:
    """`folder/name`, else `folder/name.gz`, whichever is a file (None when neither is)."""
    for candidate in (folder / name, folder / (name + GZIP)):
        if candidate.is_file():
            return candidate
    return None


def plain_name(path: Path) -> str:
    """The file's name less a `.gz` ending (`train.tsv.gz` -> `train.tsv`)."""
    return path.name[: -len(GZIP)] if path.name.endswith(GZIP) else path.name


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield `(line_number, line)` with line endings (LF or CRLF) removed.

    Bytes that are not UTF-8 are decoded as Latin-1, which every classic collection is close to.
    """
    try:
        with open_binary(path) as fh:
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


def read_json_lines(path: Path, what: str = "malformed JSON") -> Iterator[tuple[int, object]]:
    """Yield `(line_number, record)` of each non-blank JSON line; a line that is not JSON is one
    error `FILE:LINE: <what> (<reason>)`."""
    for line_no, line in read_lines(path):
        if not line.strip():
            continue
        try:
            yield line_no, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DdroError(f"{at(path, line_no)}: {what} ({exc.msg})") from None
        except RecursionError:
            raise DdroError(f"{at(path, line_no)}: {what} (nested too deep)") from None


def read_trec_qrels(path: Path) -> Iterator[tuple[int, str, str, int]]:
    """Yield `(line_number, query_id, doc_id, relevance)` of TREC qrels (`qid iteration docid
    relevance`), skipping blank lines; a malformed line is one error naming the file and line."""
    for line_no, line in read_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4:
            raise DdroError(f"{at(path, line_no)}: expected TREC qrels 'qid iter docid rel', got {line[:60]!r}")
        try:
            relevance = int(fields[3])
        except ValueError:
            raise DdroError(f"{at(path, line_no)}: relevance {fields[3]!r} is not an integer") from None
        yield line_no, fields[0], fields[2], relevance


def squash(lines: list[str]) -> str:
    """Join text lines into one string with single spaces."""
    return " ".join(" ".join(lines).split())
