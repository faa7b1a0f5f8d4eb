"""MS MARCO-style folders: documents and queries as TSV, judgments as TREC qrels.

Recognised files (names as MS MARCO distributes them, or shorter; each also gzipped, as `NAME.gz`):
- documents: `msmarco-docs.tsv`, `docs.tsv` or `collection.tsv`, one document a line as
  `id<TAB>url<TAB>title<TAB>body` (MS MARCO documents), `id<TAB>title<TAB>text` or `id<TAB>text`
  (MS MARCO passages); the column count is fixed by the first line;
- queries: every `*queries*.tsv`, `qid<TAB>text`;
- qrels: every `*qrels*` file, TREC format `qid iteration docid relevance`.
A file whose name holds `train` is the training part, one holding `dev`, `test` or `eval` the test
part; when both parts are present they define the split, each part's judgments come from its own
qrels files (and from qrels files named after neither part), and a query in both parts is refused.
"""

from __future__ import annotations

from pathlib import Path

from ddro.collections.base import Document, Qrel, Query
from ddro.collections.builder import CollectionBuilder
from ddro.collections.textio import plain_name, present, read_lines, read_trec_qrels
from ddro.errors import DdroError, at
from ddro.leniency import tolerated

_DOC_FILES = ("msmarco-docs.tsv", "docs.tsv", "collection.tsv")


def doc_file(folder: Path) -> Path | None:
    """The documents' file (each name also as `.gz`), None when there is none."""
    return next(filter(None, (present(folder, name) for name in _DOC_FILES)), None)


def is_msmarco(folder: Path) -> bool:
    return doc_file(folder) is not None


def read_docs_tsv(docs: Path, builder: CollectionBuilder) -> None:
    """A documents file, one a line as `id<TAB>url<TAB>title<TAB>body`, `id<TAB>title<TAB>text` or
    `id<TAB>text` (the first line fixes the column count)."""
    columns = None
    with builder.reading(docs, "docs"):
        for line_no, line in read_lines(docs):
            if not line.strip():
                continue
            fields, where = line.split("\t"), at(docs, line_no)
            with tolerated(where):
                if columns is None and len(fields) not in (2, 3, 4):
                    raise DdroError(f"{where}: expected 2, 3 or 4 tab-separated columns, got {len(fields)}")
                columns = columns or len(fields)
                if len(fields) != columns:
                    raise DdroError(f"{where}: expected {columns} tab-separated columns, got {len(fields)}")
                if columns == 4:
                    doc = Document(fields[0], fields[2], fields[3], fields[1])
                elif columns == 3:
                    doc = Document(fields[0], fields[1], fields[2])
                else:
                    doc = Document(fields[0], "", fields[1])
                builder.add_doc(doc, where)


def _part(path: Path) -> str | None:
    name = path.name.lower()
    if "train" in name:
        return "train"
    if any(word in name for word in ("dev", "test", "eval")):
        return "test"
    return None


def read_msmarco(folder: Path, builder: CollectionBuilder):
    read_docs_tsv(doc_file(folder), builder)

    query_files = sorted(p for p in folder.iterdir() if "queries" in p.name.lower() and plain_name(p).endswith(".tsv"))
    qrel_files = sorted(p for p in folder.iterdir() if "qrels" in p.name.lower() and p.is_file())
    if not query_files:
        raise DdroError(f"{folder}: no queries file (*queries*.tsv)")
    if not qrel_files:
        raise DdroError(f"{folder}: no qrels file (*qrels*)")
    parts: dict[str, set[str]] = {"train": set(), "test": set()}
    for path in query_files:
        with builder.reading(path, "queries"):
            for line_no, line in read_lines(path):
                if not line.strip():
                    continue
                fields, where = line.split("\t"), at(path, line_no)
                with tolerated(where):
                    if len(fields) != 2:
                        raise DdroError(f"{where}: expected 'qid<TAB>text', got {len(fields)} columns")
                    if builder.add_query(Query(fields[0].strip(), fields[1]), where) and _part(path):
                        parts[_part(path)].add(fields[0].strip())
    for path in qrel_files:
        with builder.reading(path, "qrels"):
            for line_no, query_id, doc_id, relevance in read_trec_qrels(path):
                builder.add_qrel(Qrel(query_id, doc_id, relevance), at(path, line_no), _part(path))
    if parts["train"] and parts["test"]:
        names = ", ".join(p.name for p in query_files)
        return parts["train"], parts["test"], f"given({names})"
    return None
