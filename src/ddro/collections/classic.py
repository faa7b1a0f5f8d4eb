"""Readers for the raw classic collections: Cranfield, NPL (Vaswani) and LISA.

Each collection's quirks are handled by an explicit policy that is written into
`Collection.notes`, so that it is reported with every output rather than silently absorbed:

- Cranfield: `cran.qry` numbers its queries 001..365 with gaps, but `cranqrel` numbers them
  1..225 in file order; query ids are therefore the file positions 1..225 (as ir_datasets does).
  Judgment codes 1..4 become graded relevance 5 - code (4 = complete answer); code -1 marks the
  document a query was written from and is kept as relevance 0 (not relevant). Documents 471 and
  995 have neither title nor text; they are kept (and noted), as the collection has them.
- NPL: blocks ended by a line holding only `/`; no titles; every listed judgment is relevance 1.
- LISA: documents are the files `LISA<d>.<ddd>` concatenated in name order. Records whose number
  repeats with identical text are kept once (documents 1998-2001 appear twice); a repeated number
  with different text is an error. A block without a `Document N` header is skipped and reported.
  Judgments come from `LISARJ.NUM` when present: it judges all 35 queries and agrees with every
  well-formed entry of `LISA.REL`, whereas `LISA.REL` lacks queries 22 and 23, repeats query 35 and
  has a truncated entry for query 21. Without `LISARJ.NUM`, `LISA.REL` is read: identical repeated
  entries are merged, and an entry whose count disagrees with its list is skipped and reported.

A file of these that holds no record at all is an error naming it.
"""

from __future__ import annotations

import re
from pathlib import Path

from ddro.collections.base import Document, Qrel, Query
from ddro.collections.builder import CollectionBuilder
from ddro.collections import textio
from ddro.collections.textio import squash
from ddro.errors import DdroError, at
from ddro.leniency import tolerated


def _read_lines(path: Path):
    """The classic collections predate UTF-8: a line that is not UTF-8 is read as Latin-1, which
    every one of them is close to, rather than refused."""
    return textio.read_lines(path, fallback="latin-1")


def is_cranfield(folder: Path) -> bool:
    return (folder / "cran.all.1400").is_file()


def is_npl(folder: Path) -> bool:
    return (folder / "doc-text").is_file() and (folder / "rlv-ass").is_file()


def is_lisa(folder: Path) -> bool:
    return (folder / "LISA.QUE").is_file()


# --- Cranfield -------------------------------------------------------------------------------

_CRAN_FIELDS = {".T": "title", ".A": "author", ".B": "biblio", ".W": "text"}


def _smart_records(path: Path):
    """Yield `(record_id, line_no, {field: [lines]})` from a SMART-style `.I` file."""
    rec_id, rec_line, fields, current = None, 0, {}, None
    for line_no, line in _read_lines(path):
        if line.startswith(".I"):
            if rec_id is not None:
                yield rec_id, rec_line, fields
            parts = line.split()
            if len(parts) != 2:
                raise DdroError(f"{at(path, line_no)}: malformed record header {line!r}")
            rec_id, rec_line, fields, current = parts[1], line_no, {}, None
        elif line.strip() in _CRAN_FIELDS:
            current = _CRAN_FIELDS[line.strip()]
            fields.setdefault(current, [])
        elif rec_id is None or current is None:
            if line.strip():
                raise DdroError(f"{at(path, line_no)}: text outside a record field: {line[:40]!r}")
        else:
            fields[current].append(line)
    if rec_id is not None:
        yield rec_id, rec_line, fields


def read_cranfield(folder: Path, builder: CollectionBuilder) -> None:
    docs_path, query_path, qrels_path = folder / "cran.all.1400", folder / "cran.qry", folder / "cranqrel"
    builder.keeps_empty_documents = True
    with builder.reading(docs_path, "docs"):
        for rec_id, line_no, fields in _smart_records(docs_path):
            if not rec_id.isdigit():
                raise DdroError(f"{at(docs_path, line_no)}: document id {rec_id!r} is not a number")
            title = squash(fields.get("title", []))
            builder.add_doc(Document(str(int(rec_id)), title, squash(fields.get("text", []))), at(docs_path, line_no))
    n_queries = 0
    with builder.reading(query_path, "queries"):
        for n_queries, (rec_id, line_no, fields) in enumerate(_smart_records(query_path), start=1):
            builder.add_query(Query(str(n_queries), squash(fields.get("text", []))), at(query_path, line_no))
    builder.note(f"cran.qry: {n_queries} queries renumbered 1..{n_queries} in file order, as cranqrel numbers them")
    n_origin = 0
    with builder.reading(qrels_path, "qrels"):
        for line_no, line in _read_lines(qrels_path):
            parts, where = line.split(), at(qrels_path, line_no)
            if not parts:
                continue
            with tolerated(where):
                if len(parts) != 3 or not all(re.fullmatch(r"-?\d+", p) for p in parts):
                    raise DdroError(f"{where}: expected 'query doc code', got {line!r}")
                code = int(parts[2])
                if code == -1:
                    relevance, n_origin = 0, n_origin + 1
                elif 1 <= code <= 4:
                    relevance = 5 - code
                else:
                    raise DdroError(f"{where}: relevance code {code} is not -1 or 1..4")
                builder.add_qrel(Qrel(str(int(parts[0])), str(int(parts[1])), relevance), where)
    if n_origin:
        builder.note(f"cranqrel: {n_origin} judgments with code -1 (the query's source document) kept as relevance 0")


# --- NPL -------------------------------------------------------------------------------------

def _blocks(path: Path, is_separator):
    """Yield `(first_line_no, [lines], ended)` for the blocks between separator lines.

    Leading blank lines are not part of a block; `ended` is False for a last block that no
    separator closes. An empty block between two separators yields `(line_no, [], True)`.
    """
    block, start = [], None
    for line_no, line in _read_lines(path):
        if is_separator(line):
            yield (start if block else line_no), block, True
            block, start = [], None
        elif line.strip() or block:
            if start is None:
                start = line_no
            block.append(line)
    if any(line.strip() for line in block):
        yield start, block, False


def _slash_blocks(path: Path):
    """Yield `(line_no_of_first_line, [lines])` for blocks ended by a line holding only `/`."""
    for start, block, ended in _blocks(path, lambda line: line.strip() == "/"):
        if not ended:
            raise DdroError(f"{at(path, start)}: last block is not ended by '/'")
        if not block:
            raise DdroError(f"{at(path, start)}: empty block")
        yield start, block


def read_npl(folder: Path, builder: CollectionBuilder) -> None:
    for kind, records, name in (("doc", "docs", "doc-text"), ("query", "queries", "query-text")):
        path = folder / name
        with builder.reading(path, records):
            for line_no, block in _slash_blocks(path):
                record_id = block[0].strip()
                if not record_id.isdigit():
                    raise DdroError(f"{at(path, line_no)}: expected a numeric {kind} id, got {block[0]!r}")
                text = squash(block[1:])
                if kind == "doc":
                    builder.add_doc(Document(record_id, "", text), at(path, line_no))
                else:
                    builder.add_query(Query(record_id, text), at(path, line_no))
    path = folder / "rlv-ass"
    with builder.reading(path, "qrels"):
        for line_no, block in _slash_blocks(path):
            numbers = " ".join(block).split()
            if not all(n.isdigit() for n in numbers):
                raise DdroError(f"{at(path, line_no)}: expected numbers, got {' '.join(block)[:60]!r}")
            for doc_id in numbers[1:]:
                builder.add_qrel(Qrel(numbers[0], doc_id, 1), at(path, line_no))


# --- LISA ------------------------------------------------------------------------------------

_LISA_DOC_FILE = re.compile(r"LISA\d\.\d{3}")
_LISA_HEADER = re.compile(r"Document\s+(\d+)\s*$")


def _lisa_records(paths: list[Path]):
    """Yield `(path, line_no, [lines])` for asterisk-separated records."""
    for path in paths:
        for start, block, _ in _blocks(path, lambda line: line.startswith("*****")):
            if block:
                yield path, start, block


def _split_title(lines: list[str]) -> tuple[str, str]:
    """A LISA record body: title lines, a blank line, then the abstract."""
    for i, line in enumerate(lines):
        if not line.strip():
            return squash(lines[:i]), squash(lines[i + 1:])
    return squash(lines), ""


def read_lisa(folder: Path, builder: CollectionBuilder) -> None:
    paths = sorted(p for p in folder.iterdir() if _LISA_DOC_FILE.fullmatch(p.name))
    if not paths:
        raise DdroError(f"{folder}: no LISA document files (LISA0.001 ...) found")
    texts: dict[str, tuple[str, str, str]] = {}
    repeats, fragments = [], []
    for path, line_no, block in _lisa_records(paths):
        match = _LISA_HEADER.match(block[0].strip())
        if not match:
            fragments.append(at(path, line_no))
            continue
        doc_id = str(int(match.group(1)))
        title, text = _split_title(block[1:])
        if doc_id in texts:
            first_where, first_title, first_text = texts[doc_id]
            if (first_title, first_text) != (title, text):
                raise DdroError(f"{at(path, line_no)}: document {doc_id} repeats with different text (first at {first_where})")
            repeats.append(doc_id)
            continue
        texts[doc_id] = (at(path, line_no), title, text)
        builder.add_doc(Document(doc_id, title, text), at(path, line_no))
    if repeats:
        builder.note(f"LISA: {len(repeats)} repeated records with identical text kept once (documents {', '.join(repeats)})")
    if fragments:
        builder.note(f"LISA: {len(fragments)} block(s) without a 'Document N' header skipped ({', '.join(fragments)})")
    numbers = sorted(int(d) for d in texts)
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if missing:
        builder.note(f"LISA: document numbers absent from the files: {_ranges(missing)}")
    with builder.reading(folder / "LISA.QUE", "queries"):
        _read_lisa_queries(folder / "LISA.QUE", builder)
    if (folder / "LISARJ.NUM").is_file():
        with builder.reading(folder / "LISARJ.NUM", "qrels"):
            _read_lisa_rj_num(folder / "LISARJ.NUM", builder)
        builder.note("LISA: judgments read from LISARJ.NUM (complete); LISA.REL not used")
    else:
        with builder.reading(folder / "LISA.REL", "qrels"):
            _read_lisa_rel(folder / "LISA.REL", builder)


def _ranges(numbers: list[int]) -> str:
    """`[1, 2, 3, 7]` -> `'1-3, 7'`."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _read_lisa_queries(path: Path, builder: CollectionBuilder) -> None:
    query_id, lines, start = None, [], 0
    for line_no, line in _read_lines(path):
        if query_id is None:
            if not line.strip():
                continue
            if not line.strip().isdigit():
                raise DdroError(f"{at(path, line_no)}: expected a query number, got {line!r}")
            query_id, lines, start = str(int(line.strip())), [], line_no
            continue
        text = line.rstrip()
        if text.endswith("#"):
            lines.append(text[:-1])
            builder.add_query(Query(query_id, squash(lines)), at(path, start))
            query_id = None
        else:
            lines.append(text)
    if query_id is not None:
        raise DdroError(f"{at(path, start)}: query {query_id} is not ended by '#'")


def _read_lisa_rj_num(path: Path, builder: CollectionBuilder) -> None:
    """`LISARJ.NUM`: per query, `query_id count doc_id...` in whitespace-separated numbers."""
    tokens: list[tuple[int, str]] = []
    for line_no, line in _read_lines(path):
        tokens.extend((line_no, tok) for tok in line.split())
    i = 0
    while i < len(tokens):
        line_no = tokens[i][0]
        if i + 1 >= len(tokens) or not tokens[i][1].isdigit() or not tokens[i + 1][1].isdigit():
            raise DdroError(f"{at(path, line_no)}: expected 'query count doc...'")
        query_id, count = str(int(tokens[i][1])), int(tokens[i + 1][1])
        docs = tokens[i + 2:i + 2 + count]
        if len(docs) < count or not all(tok.isdigit() for _, tok in docs):
            raise DdroError(f"{at(path, line_no)}: query {query_id} lists fewer than {count} document numbers")
        for doc_line, doc_id in docs:
            builder.add_qrel(Qrel(query_id, str(int(doc_id)), 1), at(path, doc_line))
        i += 2 + count


_REL_ENTRY = re.compile(r"Query\s+(\d+)\s*\n\s*(\d+)\s+Relevant Refs:\s*\n(.*?)-1", re.S)


def _read_lisa_rel(path: Path, builder: CollectionBuilder) -> None:
    text = "\n".join(line for _, line in _read_lines(path))
    line_of = lambda pos: text.count("\n", 0, pos) + 1  # noqa: E731
    seen: dict[str, list[str]] = {}
    for match in _REL_ENTRY.finditer(text):
        query_id, count, body = str(int(match.group(1))), int(match.group(2)), match.group(3)
        docs = body.split()
        where = at(path, line_of(match.start()))
        if len(docs) != count or not all(d.isdigit() for d in docs):
            builder.note(f"LISA.REL: entry for query {query_id} at {where} lists {len(docs)} items for {count} refs; skipped")
            continue
        if query_id in seen:
            if seen[query_id] != docs:
                raise DdroError(f"{where}: query {query_id} judged twice with different documents")
            builder.note(f"LISA.REL: repeated identical entry for query {query_id} at {where} merged")
            continue
        seen[query_id] = docs
        for doc_id in docs:
            builder.add_qrel(Qrel(query_id, str(int(doc_id)), 1), where)
