"""One place where every reader's records are checked and assembled into a `Collection`.

Readers hand in each record with the file and line it came from, so that every problem (a
duplicate document id, a judgment naming an unknown document) is reported at its source.
"""

from __future__ import annotations

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

    @staticmethod
    def _register(seen: dict[str, str], kind: str, record_id: str, where: str) -> None:
        if not isinstance(record_id, str) or not record_id.strip():
            raise DdroError(f"{where}: empty {kind} id")
        if any(c.isspace() for c in record_id):
            # Run files and qrels are split on white space: such an id would come back as two fields.
            raise DdroError(f"{where}: {kind} id {record_id!r} holds white space")
        if record_id in seen:
            raise DdroError(f"{where}: duplicate {kind} id {record_id!r} (first at {seen[record_id]})")
        seen[record_id] = where

    def add_doc(self, doc: Document, where: str) -> None:
        self._register(self._doc_where, "document", doc.doc_id, where)
        self.docs.append(doc)

    def add_query(self, query: Query, where: str) -> None:
        self._register(self._query_where, "query", query.query_id, where)
        self.queries.append(query)

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
        seen: dict[tuple[str, str], int] = {}
        for i, (qrel, where) in enumerate(zip(self.qrels, self._qrel_where)):
            if qrel.doc_id not in self._doc_where:
                raise DdroError(f"{where}: judgment names unknown document {qrel.doc_id!r}")
            if qrel.query_id not in self._query_where:
                raise DdroError(f"{where}: judgment names unknown query {qrel.query_id!r}")
            key = (qrel.query_id, qrel.doc_id)
            if key in seen and self.qrels[seen[key]].relevance != qrel.relevance:
                raise DdroError(
                    f"{where}: conflicting judgment for query {qrel.query_id!r}, document "
                    f"{qrel.doc_id!r} (first at {self._qrel_where[seen[key]]})"
                )
            seen.setdefault(key, i)
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
        if split.unjudged:
            self.note(f"{len(split.unjudged)} queries have no relevant judgment and are in neither split part")
        return Collection(self.name, self.docs, self.queries, self.qrels, split, self.source, self.notes, part_qrels)
