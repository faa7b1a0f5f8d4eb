"""One place where every reader's records are checked and assembled into a `Collection`.

Readers hand in each record with the file and line it came from, so that every problem (a
duplicate document id, a judgment naming an unknown document) is reported at its source; under
`--lenient` (`ddro.leniency`) such a record is left out and counted instead.
"""

from __future__ import annotations

from contextlib import contextmanager

from ddro.collections.base import (
    DEFAULT_TEST_FRACTION,
    Collection,
    Document,
    Qrel,
    Query,
    fraction_split,
    given_split,
)
from ddro.errors import DdroError
from ddro.leniency import tolerated

# What `CollectionBuilder.reading` calls each kind of record when a file holds none.
_RECORDS = {"docs": "documents", "queries": "queries", "qrels": "judgments"}


class CollectionBuilder:
    def __init__(self, name: str, source: str):
        self.name = name
        self.source = source
        self.docs: list[Document] = []
        self.queries: list[Query] = []
        self.qrels: list[Qrel] = []
        self.notes: list[str] = []
        self._doc_where: dict[str, str] = {}
        self._query_where: dict[str, str] = {}
        self._qrel_where: list[str] = []
        self._qrel_part: list[str | None] = []
        # A document without title and text is a broken line in a file of one record a line
        # (BEIR, MS MARCO TSV) and refused; a reader of a collection that really has some
        # (Cranfield's 471 and 995) keeps them, and `build` notes them.
        self.keeps_empty_documents = False

    @staticmethod
    def _check_id(seen: dict[str, str], kind: str, record_id: str, where: str) -> None:
        if not isinstance(record_id, str) or not record_id.strip():
            raise DdroError(f"{where}: empty {kind} id")
        if any(c.isspace() for c in record_id):
            # Run files and qrels are split on white space: such an id would come back as two fields.
            raise DdroError(f"{where}: {kind} id {record_id!r} holds white space")
        if record_id in seen:
            raise DdroError(f"{where}: duplicate {kind} id {record_id!r} (first at {seen[record_id]})")

    def add_doc(self, doc: Document, where: str) -> None:
        with tolerated(where):
            self._check_id(self._doc_where, "document", doc.doc_id, where)
            if not self.keeps_empty_documents and not (doc.title.strip() or doc.text.strip()):
                raise DdroError(f"{where}: document {doc.doc_id!r} is empty (no title, no text); "
                                "--lenient skips empty documents")
            self._doc_where[doc.doc_id] = where
            self.docs.append(doc)

    def add_query(self, query: Query, where: str) -> bool:
        """Whether the query was added (under --lenient a bad one is left out)."""
        with tolerated(where):
            self._check_id(self._query_where, "query", query.query_id, where)
            if not query.text.strip():
                raise DdroError(f"{where}: query {query.query_id!r} has no text")
            self._query_where[query.query_id] = where
            self.queries.append(query)
            return True
        return False

    @contextmanager
    def reading(self, path, kind: str):
        """Around the reading of one file of `kind` records (`docs`, `queries` or `qrels`): a file
        that gives none (empty, or every line skipped) is an error naming it."""
        before = len(getattr(self, kind))
        yield
        if len(getattr(self, kind)) == before:
            raise DdroError(f"{path}: no {_RECORDS[kind]}")

    def add_qrel(self, qrel: Qrel, where: str, part: str | None = None) -> None:
        """`part`: the split part (`train`, `test`, or another file's name such as `dev`) whose file
        the judgment comes from, when the source's files define the split; None: every part."""
        self.qrels.append(qrel)
        self._qrel_where.append(where)
        self._qrel_part.append(part)

    def note(self, message: str) -> None:
        self.notes.append(message)

    def build(self, test_fraction: float | None = None, given: tuple[set, set, str] | None = None,
              default_test_fraction: float = DEFAULT_TEST_FRACTION) -> Collection:
        """Check the qrels against documents and queries, then fix the split.

        `given` is `(train_ids, test_ids, rule)` when the source defines a split; an explicit
        `test_fraction` always overrides it.
        """
        if not self.docs:
            raise DdroError(f"{self.source}: no documents found")
        if not any(d.title.strip() or d.text.strip() for d in self.docs):
            raise DdroError(f"{self.source}: all {len(self.docs)} documents are empty (no title, no text)")
        # The judgments that pass (under --lenient the others are left out), each pair's first.
        qrels, wheres, parts, seen = [], [], [], {}
        for qrel, where, part in zip(self.qrels, self._qrel_where, self._qrel_part):
            with tolerated(where):
                if qrel.doc_id not in self._doc_where:
                    raise DdroError(f"{where}: judgment names unknown document {qrel.doc_id!r}")
                if qrel.query_id not in self._query_where:
                    raise DdroError(f"{where}: judgment names unknown query {qrel.query_id!r}")
                key = (qrel.query_id, qrel.doc_id)
                if key in seen and qrels[seen[key]].relevance != qrel.relevance:
                    raise DdroError(
                        f"{where}: conflicting judgment for query {qrel.query_id!r}, document "
                        f"{qrel.doc_id!r} (first at {wheres[seen[key]]})"
                    )
                seen.setdefault(key, len(qrels))
                qrels.append(qrel)
                wheres.append(where)
                parts.append(part)
        self.qrels, self._qrel_where, self._qrel_part = qrels, wheres, parts
        # Each part's own judgments, taken before identical judgments of different files are merged.
        part_qrels = {part: list({(q.query_id, q.doc_id): q for q, of in zip(self.qrels, self._qrel_part)
                                  if of in (part, None)}.values()) for part in ("train", "test")}
        if len(seen) < len(self.qrels):
            self.note(f"{len(self.qrels) - len(seen)} repeated identical judgments merged")
            self.qrels = [self.qrels[i] for i in sorted(seen.values())]
        query_ids = [q.query_id for q in self.queries]
        judged = {q.query_id for q in self.qrels if q.relevance > 0}
        if test_fraction is not None or given is None:
            fraction = default_test_fraction if test_fraction is None else test_fraction
            split = fraction_split(query_ids, judged, fraction)
            part_qrels = None
        else:
            train, test, rule = given
            judged_in = {part: {q.query_id for q in qrels if q.relevance > 0} for part, qrels in part_qrels.items()}
            split = given_split(query_ids, judged, train, test, rule, judged_in["train"], judged_in["test"])
            if all(part is None for part in self._qrel_part):
                part_qrels = None
        empty = [d.doc_id for d in self.docs if not (d.title.strip() or d.text.strip())]
        if empty:
            self.note(f"{len(empty)} empty documents (no title, no text) kept: {', '.join(empty[:10])}"
                      + (", ..." if len(empty) > 10 else ""))
        if split.unjudged:
            self.note(f"{len(split.unjudged)} queries have no relevant judgment and are in neither split part")
        return Collection(self.name, self.docs, self.queries, self.qrels, split, self.source, self.notes, part_qrels)
