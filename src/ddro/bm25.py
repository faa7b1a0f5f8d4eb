"""BM25 baseline, with bm25s: the lexical reference every generative retriever is compared with.

Tokenization is bm25s' own (scikit-learn's `\\b\\w\\w+\\b` pattern, lower-cased), English stop
words removed, then by default stemmed with PyStemmer's English (Snowball) stemmer, as IR papers
run BM25 (Pyserini's default analyzer stems too, with Porter's stemmer: `stemmer="porter"`).
`stemmer="none"` gives the unstemmed variant.
"""

from __future__ import annotations

from typing import Iterable

import bm25s

from ddro.collections.base import Document, Query
from ddro.errors import OptionError
from ddro.runs import DEFAULT_K, Run

DEFAULT_STEMMER = "english"


def load_stemmer(name: str):
    """PyStemmer's stemmer `name` (e.g. english, porter), or None for `none`."""
    if name == "none":
        return None
    import Stemmer

    if name not in Stemmer.algorithms():
        raise OptionError("bm25_stemmer", f"{name!r}: unknown stemmer (none, or one of PyStemmer's: "
                          f"{', '.join(Stemmer.algorithms())})")
    return Stemmer.Stemmer(name)


def _tokenize(texts: list[str], stemmer) -> list[list[str]]:
    """Token strings (not ids): documents and queries are tokenized separately, and strings keep
    the two vocabularies from having to agree on numbering."""
    return bm25s.tokenize(texts, lower=True, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)


class BM25Retriever:
    """Okapi BM25 (bm25s' default Lucene variant) over the title and text of each document."""

    def __init__(self, k1: float = 1.5, b: float = 0.75, stemmer: str = DEFAULT_STEMMER):
        self.k1 = k1
        self.b = b
        self.stemmer = stemmer
        self._stemmer = load_stemmer(stemmer)
        self._model: bm25s.BM25 | None = None
        self._doc_ids: list[str] = []

    def index(self, docs: Iterable[Document]) -> "BM25Retriever":
        """Index `title + " " + text` of each document; replaces any earlier index."""
        docs = list(docs)
        if not docs:
            raise ValueError("cannot index an empty document list")
        model = bm25s.BM25(k1=self.k1, b=self.b)
        model.index(_tokenize([d.full_text for d in docs], self._stemmer), show_progress=False)
        self._model = model
        self._doc_ids = [d.doc_id for d in docs]
        return self

    def search(self, queries: Iterable[Query], k: int = DEFAULT_K) -> Run:
        """The top `k` documents of each query (k capped at the collection size), best first.

        Every query gets exactly min(k, documents) entries, as bm25s returns them, including
        documents that match no query term (score 0). Equal scores within the list are ordered
        by collection position, so the order does not depend on how bm25s sorts ties (which of
        several documents tied at the k-th score make the cut is still bm25s' choice).
        """
        if self._model is None:
            raise RuntimeError("BM25Retriever.search called before index")
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        queries = list(queries)
        ids = [q.query_id for q in queries]
        if len(set(ids)) != len(ids):
            raise ValueError("query ids must be unique")
        if not queries:
            return {}
        k = min(k, len(self._doc_ids))
        indices, scores = self._model.retrieve(_tokenize([q.text for q in queries], self._stemmer), k=k,
                                               show_progress=False)
        return {qid: self._ranking(row_idx, row_scores) for qid, row_idx, row_scores in zip(ids, indices, scores)}

    def _ranking(self, indices, scores) -> list[tuple[str, float]]:
        order = sorted(range(len(indices)), key=lambda i: (-float(scores[i]), int(indices[i])))
        return [(self._doc_ids[int(indices[i])], float(scores[i])) for i in order]
