"""Queries and judgments given as files, without a collection (`ddro search/eval --queries-file`,
`ddro eval --qrels`).

Two layouts each:
- queries: MS MARCO style TSV, `qid<TAB>text` a line; or a released test set (below);
- qrels: TREC qrels, `qid iteration docid relevance` a line; or a released test set.

A released test set (dataset `kiyam/ddro-testsets`, e.g. `query_dev.t5_128_1.pq.top_300k.json`)
is JSON lines `{"query_id": "[d108472]", "doc_id": "32211,...", "input_ids": [...]}`: a query
already tokenized with T5's vocabulary (`input_ids`), and in `query_id`, despite its name, the
id of the query's relevant document. It names no query: ddro calls line n's query `n`, so a
query with two relevant documents is two lines and two evaluated queries, as in the authors'
evaluator. Judgment doc ids go through `released.released_doc_id` (brackets off, lower case).
"""

from __future__ import annotations

from pathlib import Path

from ddro.collections.base import Query
from ddro.collections.textio import read_json_lines, read_lines, read_trec_qrels
from ddro.errors import DdroError, at
from ddro.leniency import tolerated
from ddro.released import released_doc_id, resolve_file


def _is_test_set(path: Path) -> bool:
    for _, line in read_lines(path):
        if line.strip():
            return line.lstrip().startswith("{")
    return False


def _test_set_records(path: Path):
    """`(line number, query token ids, relevant doc id)` of each line of a released test set."""
    for line_no, record in read_json_lines(path, "not a JSON line of a released test set"):
        ids = record.get("input_ids") if isinstance(record, dict) else None
        doc = record.get("query_id") if isinstance(record, dict) else None
        with tolerated(at(path, line_no)):
            if not isinstance(ids, list) or not ids or not all(isinstance(t, int) and t >= 0 for t in ids):
                raise DdroError(f"{at(path, line_no)}: 'input_ids' must be a non-empty list of token ids")
            if not isinstance(doc, str) or not released_doc_id(doc):
                raise DdroError(f"{at(path, line_no)}: 'query_id' (the relevant document) must be a non-empty string")
            yield line_no, tuple(ids), released_doc_id(doc)


def is_tokenized(queries: list[Query]) -> bool:
    """Whether the queries came from a released test set (token ids, not text)."""
    return bool(queries) and not isinstance(queries[0].text, str)


def read_queries(spec: str) -> list[Query]:
    """Queries of a TSV file or a released test set (whose queries are token-id tuples)."""
    path = resolve_file(spec, "--queries-file")
    if _is_test_set(path):
        return [Query(str(line_no), ids) for line_no, ids, _ in _test_set_records(path)]
    queries, seen = [], {}
    for line_no, line in read_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        with tolerated(at(path, line_no)):
            if len(fields) != 2 or not fields[0].strip():
                raise DdroError(f"{at(path, line_no)}: expected 'qid<TAB>text', got {len(fields)} columns")
            qid = fields[0].strip()
            if qid in seen:
                raise DdroError(f"{at(path, line_no)}: query {qid} is already on line {seen[qid]}")
            seen[qid] = line_no
            queries.append(Query(qid, fields[1]))
    if not queries:
        raise DdroError(f"{path}: no queries")
    return queries


def read_qrels(spec: str) -> dict[str, dict[str, int]]:
    """`{query_id: {doc_id: relevance}}` of TREC qrels or a released test set; doc ids as
    `released_doc_id` writes them (a relevance given twice for one pair: the larger counts)."""
    path = resolve_file(spec, "--qrels")
    qrels: dict[str, dict[str, int]] = {}
    if _is_test_set(path):
        for line_no, _, doc in _test_set_records(path):
            qrels[str(line_no)] = {doc: 1}
        return qrels
    for _, query_id, doc_id, relevance in read_trec_qrels(path):
        docs = qrels.setdefault(query_id, {})
        doc = released_doc_id(doc_id)
        docs[doc] = max(relevance, docs.get(doc, relevance))
    if not qrels:
        raise DdroError(f"{path}: no judgments")
    return qrels


def normalized_run(run: dict) -> dict:
    """A run with its doc ids written as the qrels of `read_qrels` are (first occurrence kept)."""
    out = {}
    for qid, ranking in run.items():
        seen, kept = set(), []
        for doc_id, score in ranking:
            doc = released_doc_id(doc_id)
            if doc not in seen:
                seen.add(doc)
                kept.append((doc, score))
        out[qid] = kept
    return out
