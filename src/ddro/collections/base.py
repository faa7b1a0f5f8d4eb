"""The `Collection` type shared by every reader: documents, queries, graded qrels and a split.

Records follow ir_datasets' naming (`doc_id`, `query_id`, `text`, `relevance`) so users can move
between the two without thinking.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from typing import Iterator, NamedTuple

from ddro.errors import DdroError, OptionError

# The split used when a collection defines none and the user gives no --test-fraction.
DEFAULT_TEST_FRACTION = 1 / 3

logger = logging.getLogger(__name__)


class Document(NamedTuple):
    doc_id: str
    title: str
    text: str
    url: str = ""

    @property
    def full_text(self) -> str:
        """Title and text joined by one space: what BM25, TF-IDF and the models read of a document."""
        return f"{self.title} {self.text}"


class Query(NamedTuple):
    query_id: str
    text: str


class PseudoQuery(Query):
    """A query made from a document (a span of it, a line of a pseudo-queries file, or a generated
    question), standing in for a user's query; that document is its one positive."""

    __slots__ = ()


class Qrel(NamedTuple):
    query_id: str
    doc_id: str
    relevance: int


@dataclass(frozen=True)
class Split:
    """Which queries train and which test, and the rule that decided it (recorded with outputs)."""

    rule: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    unjudged: tuple[str, ...] = ()

    def describe(self) -> dict:
        return {
            "rule": self.rule,
            "train_queries": len(self.train),
            "test_queries": len(self.test),
            "unjudged_queries": len(self.unjudged),
        }

    def record(self) -> dict:
        """What a model folder or run file keeps of the split, to check that later steps use the same
        one: the rule, the number of test queries and the SHA-1 of their sorted ids."""
        digest = hashlib.sha1("\n".join(sorted(self.test)).encode()).hexdigest()
        return {"rule": self.rule, "test_queries": len(self.test), "test_ids_sha1": digest}


def check_split(recorded: dict | None, split: Split, where: str, collection: str) -> None:
    """Refuse (one line) a split other than the one `where` (a model folder or run) was made with,
    so that its test queries never become training queries; a folder from before splits were
    recorded passes with a warning."""
    if recorded is None:
        logger.warning(f"{where} records no split (saved before ddro recorded one); "
                       f"not checked against {collection}'s split")
        return
    current = split.record()
    if recorded.get("test_ids_sha1") != current["test_ids_sha1"]:
        raise DdroError(
            f"{where} was made with the split {recorded.get('rule')} ({recorded.get('test_queries')} test queries), "
            f"but {collection} now gives {current['rule']} ({current['test_queries']} test queries, other ids); "
            "pass the --test-fraction it was made with")


@dataclass
class Collection:
    """A test collection: documents, queries, graded qrels and a named train/test split.

    `notes` lists every quirk of the source a reader handled by policy (duplicate records merged,
    missing judgments, ...), so that it is reported rather than silently absorbed.
    """

    name: str
    docs: list[Document]
    queries: list[Query]
    qrels: list[Qrel]
    split: Split
    source: str = ""
    notes: list[str] = field(default_factory=list)
    # When the source's files define the split (BEIR qrels/train.tsv and test.tsv, MS MARCO
    # qrels.train / qrels.dev), each part's judgments from its own files (and files of no part);
    # None: one set of judgments serves both parts.
    part_qrels: dict[str, list[Qrel]] | None = None

    def docs_iter(self) -> Iterator[Document]:
        return iter(self.docs)

    def queries_iter(self) -> Iterator[Query]:
        return iter(self.queries)

    def qrels_iter(self) -> Iterator[Qrel]:
        return iter(self.qrels)

    def qrels_dict(self, query_ids=None, part: str | None = None) -> dict[str, dict[str, int]]:
        """Qrels as `{query_id: {doc_id: relevance}}` (the shape ir_measures and pytrec_eval take).

        `part` (`train` or `test`) takes only that part's judgments where the source's files
        define the split, so a query judged in both `dev.tsv` and `train.tsv` trains on
        `train.tsv`'s alone; None (or a split by the fraction rule) takes every judgment.
        """
        if part not in (None, "train", "test"):
            raise ValueError(f"part must be 'train', 'test' or None, not {part!r}")
        wanted = None if query_ids is None else set(query_ids)
        qrels = self.qrels if part is None or self.part_qrels is None else self.part_qrels[part]
        out: dict[str, dict[str, int]] = {}
        for q in qrels:
            if wanted is None or q.query_id in wanted:
                out.setdefault(q.query_id, {})[q.doc_id] = q.relevance
        return out

    def queries_of(self, part: str) -> list[Query]:
        """The queries of one part of the split: `train` or `test`."""
        if part not in ("train", "test"):
            raise ValueError(f"part must be 'train' or 'test', not {part!r}")
        ids = set(getattr(self.split, part))
        return [q for q in self.queries if q.query_id in ids]

    def with_documents(self, doc_ids, source: str = "the docid table") -> "Collection":
        """This collection with exactly the documents `doc_ids`, in that order (a table's: training
        indexes documents by their row), its queries and split kept and the judgments of other
        documents dropped; one line naming the first id it lacks."""
        by_id = {d.doc_id: d for d in self.docs}
        missing = next((d for d in doc_ids if d not in by_id), None)
        if missing is not None:
            raise DdroError(f"{source}: document {missing!r} is not in the collection {self.source or self.name}")
        known = set(doc_ids)
        part_qrels = None if self.part_qrels is None else {
            part: [q for q in qrels if q.doc_id in known] for part, qrels in self.part_qrels.items()}
        return replace(self, docs=[by_id[d] for d in doc_ids], qrels=[q for q in self.qrels if q.doc_id in known],
                       part_qrels=part_qrels)

    def judged_query_ids(self) -> list[str]:
        """Queries with at least one relevant (relevance > 0) judgment, in query order."""
        relevant = {q.query_id for q in self.qrels if q.relevance > 0}
        return [q.query_id for q in self.queries if q.query_id in relevant]

    def describe(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "documents": len(self.docs),
            "queries": len(self.queries),
            "judged_queries": len(self.judged_query_ids()),
            "qrels": len(self.qrels),
            "split": self.split.describe(),
            "notes": list(self.notes),
        }


def _rule_key(rule: str, query_id: str) -> str:
    """The SHA-1 a split rule orders queries by."""
    return hashlib.sha1(f"{rule}:{query_id}".encode()).hexdigest()


def fraction_split(query_ids: list[str], judged: set[str], test_fraction: float) -> Split:
    """The documented split rule for collections that define no split of their own.

    Only judged queries (at least one relevant document) take part; each is ranked by the SHA-1
    of `"ddro-split:" + query_id`, and the first `round(test_fraction * n_judged)` in that order
    are test queries, the rest train. The rule depends on the query ids alone: not on file order,
    not on a random generator, so every tool and every run gets the same split.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise OptionError("test_fraction", f"must be between 0 and 1, not {test_fraction}")
    judged_ids = [q for q in query_ids if q in judged]
    unjudged = tuple(q for q in query_ids if q not in judged)
    n_test = round(test_fraction * len(judged_ids))
    ranked = sorted(judged_ids, key=lambda q: _rule_key("ddro-split", q))
    test = set(ranked[:n_test])
    return Split(
        rule=f"sha1-fraction(test_fraction={test_fraction:.4g})",
        train=tuple(q for q in judged_ids if q not in test),
        test=tuple(q for q in judged_ids if q in test),
        unjudged=unjudged,
    )


def validation_part(query_ids, fraction: float) -> set[str]:
    """The validation queries carved out of training queries: those whose SHA-1 of
    `"ddro-validation:" + query_id` falls below `fraction` (at least one when `fraction > 0` and there
    are two or more queries). SFT leaves them out of its query stage and DDRO selects on them, so
    both phases agree without storing a list, and they are never test queries."""
    query_ids = list(query_ids)
    if fraction <= 0 or len(query_ids) < 2:
        return set()
    part = {q for q in query_ids if int(_rule_key("ddro-validation", q)[:8], 16) / 16**8 < fraction}
    return part or {min(query_ids, key=lambda q: _rule_key("ddro-validation", q))}


def given_split(query_ids: list[str], judged: set[str], train: set[str], test: set[str], rule: str,
                judged_train: set[str] | None = None, judged_test: set[str] | None = None) -> Split:
    """A split the source defines (e.g. BEIR `qrels/train.tsv` and `qrels/test.tsv`): a part's
    queries are those it names that have a relevant judgment (in that part's own files, when
    `judged_train` / `judged_test` say which). A query in both parts is refused: it would be
    trained on and tested on."""
    split = Split(
        rule=rule,
        train=tuple(q for q in query_ids if q in train and q in (judged if judged_train is None else judged_train)),
        test=tuple(q for q in query_ids if q in test and q in (judged if judged_test is None else judged_test)),
        unjudged=tuple(q for q in query_ids if q not in judged),
    )
    shared = sorted(set(split.train) & set(split.test))
    if shared:
        raise DdroError(f"{rule}: {len(shared)} queries are in both the training and the test part "
                        f"(e.g. query {shared[0]!r}); remove them from one part, or pass --test-fraction")
    return split
