"""Exact dense retrieval with the docid encoder's own document embeddings: the ranking the
computed docids (pq, rq, hkmeans) quantize, so the gap to it is what the codes lose.

Documents are embedded as for their docids (`docids.encoders.document_texts`, the same cache),
queries by the same encoder (`encode_queries`: LSA projects them with the documents' fit), and
documents are ranked by inner product, which for the built-in encoders (unit vectors) is cosine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ddro.collections.base import Query
from ddro.runs import DEFAULT_K, Run


def encoder_retriever(collection, encoder: str, seed: int = 0, cache_dir: str | None = None) -> "DenseRetriever":
    """A `DenseRetriever` over `collection` with the `docids.encoders.get_encoder` spec `encoder`,
    its document embeddings cached under `cache_dir` (default: ddro's cache), as the docids cache them."""
    from ddro.docids.encoders import get_encoder, resolve_cache_dir

    return DenseRetriever(get_encoder(encoder, seed), resolve_cache_dir(cache_dir)).index(collection)


class DenseRetriever:
    def __init__(self, encoder, cache_dir: Path | None = None):
        self.encoder = encoder
        self.cache_dir = cache_dir
        self._doc_ids: list[str] = []
        self._doc_texts: list[str] = []
        self._vectors: np.ndarray | None = None

    def index(self, collection) -> "DenseRetriever":
        from ddro.docids.encoders import document_texts, embed_documents

        self._doc_texts = document_texts(collection)
        self._vectors = embed_documents(self._doc_texts, self.encoder, self.cache_dir)
        self._doc_ids = [d.doc_id for d in collection.docs]
        return self

    def search(self, queries: Iterable[Query], k: int = DEFAULT_K) -> Run:
        """The top `k` documents of each query by inner product, best first; equal scores in
        collection order."""
        if self._vectors is None:
            raise RuntimeError("DenseRetriever.search called before index")
        queries = list(queries)
        if not queries:
            return {}
        k = min(k, len(self._doc_ids))
        query_vectors = self.encoder.encode_queries([q.text for q in queries], self._doc_texts)
        scores = query_vectors.astype(np.float32) @ self._vectors.T
        run: Run = {}
        for query, row in zip(queries, scores):
            top = np.argsort(-row, kind="stable")[:k]
            run[query.query_id] = [(self._doc_ids[i], float(row[i])) for i in top]
        return run
