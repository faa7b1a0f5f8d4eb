"""Line reading with locations, shared by the readers; a file ending in `.gz` is read as it is,
decompressed while it streams."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterator

from ddro.errors import DdroError, at
from ddro.leniency import tolerated


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


def read_lines(path: Path, fallback: str | None = None) -> Iterator[tuple[int, str]]:
    """Yield `(line_number, line)` with line endings (LF or CRLF) removed.

    A line that is not UTF-8 is an error naming it (a file in another encoding, or not text at
    all), unless `fallback` names the encoding to decode it with instead; a NUL byte is an error
    too (no text file holds one). Under `--lenient` such a line is skipped.
    """
    try:
        with open_binary(path) as fh:
            for line_no, raw in enumerate(fh, start=1):
                with tolerated(at(path, line_no)):
                    yield line_no, _decoded(raw, fallback, at(path, line_no))
    except FileNotFoundError:
        raise DdroError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DdroError(f"{path}: is a directory, expected a file") from None
    except PermissionError:
        raise DdroError(f"{path}: permission denied") from None
    except OSError as exc:  # also gzip.BadGzipFile: a `.gz` file that is not gzip
        raise DdroError(f"{at(path)}: cannot read ({exc.strerror or exc})") from None
    except EOFError:  # a `.gz` file cut short
        raise DdroError(f"{at(path)}: cannot read (the compressed file ends early)") from None


def _decoded(raw: bytes, fallback: str | None, where: str) -> str:
    nul = raw.find(b"\0")
    if nul >= 0:
        raise DdroError(f"{where}: NUL byte at column {nul + 1}: binary data, not text")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if fallback is None:
            raise DdroError(f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None
        line = raw.decode(fallback)
    return line.rstrip("\r\n")


def read_json_lines(path: Path, what: str = "malformed JSON") -> Iterator[tuple[int, object]]:
    """Yield `(line_number, record)` of each non-blank JSON line; a line that is not JSON is one
    error `FILE:LINE: <what> (<reason>)` (skipped under `--lenient`)."""
    for line_no, line in read_lines(path):
        if not line.strip():
            continue
        with tolerated(at(path, line_no)):
            yield line_no, _json(line, f"{at(path, line_no)}: {what}")


def _json(text: str, failure: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DdroError(f"{failure} ({exc.msg})") from None
    except RecursionError:
        raise DdroError(f"{failure} (nested too deep)") from None


def read_json_file(path: Path, kind: type = dict):
    """The JSON value a whole file holds, which must be a `kind`; else one line naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DdroError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DdroError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise DdroError(f"{path}: cannot read ({exc.strerror})") from None
    value = _json(text, f"{path}: not JSON")
    if not isinstance(value, kind):
        raise DdroError(f"{path}: expected a JSON {'object' if kind is dict else kind.__name__}, "
                        f"found {type(value).__name__}")
    return value


def read_trec_qrels(path: Path) -> Iterator[tuple[int, str, str, int]]:
    """Yield `(line_number, query_id, doc_id, relevance)` of TREC qrels (`qid iteration docid
    relevance`), skipping blank lines; a malformed line is one error naming the file and line
    (skipped under `--lenient`)."""
    for line_no, line in read_lines(path):
        fields = line.split()
        if not fields:
            continue
        with tolerated(at(path, line_no)):
            if len(fields) != 4:
                raise DdroError(f"{at(path, line_no)}: expected TREC qrels 'qid iter docid rel', got {line[:60]!r}")
            yield line_no, fields[0], fields[2], integer(fields[3], "relevance", at(path, line_no))


def integer(text: str, name: str, where: str) -> int:
    """`text` as an integer (a relevance grade, a rank); else one error naming the place."""
    try:
        return int(text)
    except ValueError:
        raise DdroError(f"{where}: {name} {text!r} is not an integer") from None


def squash(lines: list[str]) -> str:
    """Join text lines into one string with single spaces."""
    return " ".join(" ".join(lines).split())
