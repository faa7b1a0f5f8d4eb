"""BEIR-layout folders: `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`, each also as `.gz`.

Split: `qrels/train.tsv` and `qrels/test.tsv` together define it (`dev.tsv` joins neither and is
reported), and each part's judgments are its own file's (a query judged in `dev.tsv` and
`train.tsv` trains on `train.tsv`'s); a query in both parts is refused. A folder with only `qrels/test.tsv` makes every judged query a test query unless
`--test-fraction` says otherwise.
"""

from __future__ import annotations

from pathlib import Path

from ddro.collections.base import Document, Qrel, Query
from ddro.collections.builder import CollectionBuilder
from ddro.collections.textio import integer, plain_name, present, read_json_lines, read_lines
from ddro.errors import DdroError, at
from ddro.leniency import tolerated


def is_beir(folder: Path) -> bool:
    return present(folder, "corpus.jsonl") is not None


def _id(record, where: str) -> str:
    if not isinstance(record, dict) or "_id" not in record:
        raise DdroError(f"{where}: record has no '_id' field")
    if isinstance(record["_id"], bool) or not isinstance(record["_id"], (str, int)):
        raise DdroError(f"{where}: '_id' must be a string or an integer, not {record['_id']!r}")
    return str(record["_id"])


def _field(record: dict, name: str, where: str) -> str:
    value = record.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DdroError(f"{where}: field {name!r} is not a string")
    return value


def read_corpus(corpus: Path, builder: CollectionBuilder) -> None:
    """A BEIR `corpus.jsonl`: one JSON record a line with `_id`, `title`, `text` (and `metadata.url`)."""
    with builder.reading(corpus, "docs"):
        for line_no, rec in read_json_lines(corpus):
            where = at(corpus, line_no)
            with tolerated(where):
                doc_id = _id(rec, where)
                url = _field(rec["metadata"], "url", where) if isinstance(rec.get("metadata"), dict) else ""
                builder.add_doc(Document(doc_id, _field(rec, "title", where), _field(rec, "text", where), url), where)


def read_beir(folder: Path, builder: CollectionBuilder, test_fraction: float | None):
    """Read the folder; returns the `given` split argument for `CollectionBuilder.build`."""
    read_corpus(present(folder, "corpus.jsonl"), builder)
    queries = present(folder, "queries.jsonl") or folder / "queries.jsonl"
    with builder.reading(queries, "queries"):
        for line_no, rec in read_json_lines(queries):
            where = at(queries, line_no)
            with tolerated(where):
                builder.add_query(Query(_id(rec, where), _field(rec, "text", where)), where)
    qrels_dir = folder / "qrels"
    if not qrels_dir.is_dir():
        raise DdroError(f"{qrels_dir}: folder not found (BEIR layout needs qrels/<split>.tsv)")
    parts: dict[str, set[str]] = {}
    for path in sorted([*qrels_dir.glob("*.tsv"), *qrels_dir.glob("*.tsv.gz")]):
        part = plain_name(path).removesuffix(".tsv")
        parts[part] = _read_qrels_tsv(path, part, builder)
    if not parts:
        raise DdroError(f"{qrels_dir}: no <split>.tsv files")
    if "dev" in parts:
        builder.note("qrels/dev.tsv read; its queries are in neither split part unless also in train/test")
    if "train" in parts and "test" in parts:
        return parts["train"], parts["test"], "given(qrels/train.tsv, qrels/test.tsv)"
    if set(parts) == {"test"}:
        if test_fraction is None:
            return set(), parts["test"], "given(qrels/test.tsv only: every judged query is a test query)"
        return None
    builder.note(f"qrels splits {sorted(parts)} do not name both train and test; the fraction rule decides")
    return None


def _read_qrels_tsv(path: Path, part: str, builder: CollectionBuilder) -> set[str]:
    query_ids = set()
    with builder.reading(path, "qrels"):
        for line_no, line in read_lines(path):
            parts = line.split("\t")
            if line_no == 1 and parts[0].strip().lower() in ("query-id", "query_id", "qid"):
                continue
            if not line.strip():
                continue
            where = at(path, line_no)
            with tolerated(where):
                if len(parts) != 3:
                    raise DdroError(f"{where}: expected 'query-id<TAB>corpus-id<TAB>score', got {line[:60]!r}")
                relevance = integer(parts[2], "score", where)
                builder.add_qrel(Qrel(parts[0].strip(), parts[1].strip(), relevance), where, part)
                query_ids.add(parts[0].strip())
    return query_ids
