"""The `Collection` type shared by every reader: documents, queries, graded qrels and a split.

Records follow ir_datasets' naming (`doc_id`, `query_id`, `text`, `relevance`) so users can move
between the two without thinking.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple

from ddro.errors import DdroError

# The split used when a collection defines none and the user gives no --test-fraction.
DEFAULT_TEST_FRACTION = 1 / 3


class Document(NamedTuple):
    doc_id: str
    title: str
    text: str
    url: str = ""


class Query(NamedTuple):
    query_id: str
    text: str


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

    def docs_iter(self) -> Iterator[Document]:
        return iter(self.docs)

    def queries_iter(self) -> Iterator[Query]:
        return iter(self.queries)

    def qrels_iter(self) -> Iterator[Qrel]:
        return iter(self.qrels)

    def qrels_dict(self, query_ids=None) -> dict[str, dict[str, int]]:
        """Qrels as `{query_id: {doc_id: relevance}}` (the shape ir_measures and pytrec_eval take)."""
        wanted = None if query_ids is None else set(query_ids)
        out: dict[str, dict[str, int]] = {}
        for q in self.qrels:
            if wanted is None or q.query_id in wanted:
                out.setdefault(q.query_id, {})[q.doc_id] = q.relevance
        return out

    def queries_of(self, part: str) -> list[Query]:
        """The queries of one part of the split: `train` or `test`."""
        if part not in ("train", "test"):
            raise ValueError(f"part must be 'train' or 'test', not {part!r}")
        ids = set(getattr(self.split, part))
        return [q for q in self.queries if q.query_id in ids]

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
        raise DdroError(f"--test-fraction must be between 0 and 1, not {test_fraction}")
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


def given_split(query_ids: list[str], judged: set[str], train: set[str], test: set[str], rule: str) -> Split:
    """A split the source defines (e.g. BEIR `qrels/train.tsv` and `qrels/test.tsv`)."""
    return Split(
        rule=rule,
        train=tuple(q for q in query_ids if q in train and q in judged),
        test=tuple(q for q in query_ids if q in test and q in judged),
        unjudged=tuple(q for q in query_ids if q not in judged),
    )
