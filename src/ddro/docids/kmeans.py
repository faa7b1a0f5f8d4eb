"""Seeded k-means, the one clustering routine behind pq, rq and hkmeans."""

from __future__ import annotations

import warnings

import numpy as np

# Above this many rows k-means runs mini-batch: at 1M x 384 with K=256 it takes seconds where full
# Lloyd iterations take many minutes, and its error is within 2% of theirs; faiss is faster still
# but a dependency more (benchmarks/results/kmeans-choice-cpu-2core.jsonl, docs/scaling.md).
MINI_BATCH_ABOVE = 50_000


def kmeans(x: np.ndarray, k: int, seed: int, max_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Cluster rows of `x` into at most `k` clusters; returns (centroids [k', d], labels [n]).

    k is lowered to the number of distinct rows when there are fewer (a tiny corpus), so every
    centroid is used. Deterministic for a given seed (k-means++ init, one run); mini-batch above
    `MINI_BATCH_ABOVE` rows.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    x = np.ascontiguousarray(x, dtype=np.float32)
    distinct = len(np.unique(x, axis=0)) if len(x) <= 4 * k else k
    k = max(1, min(k, distinct))
    if k == 1:
        return x.mean(axis=0, keepdims=True), np.zeros(len(x), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(x) > MINI_BATCH_ABOVE:
            model = MiniBatchKMeans(n_clusters=k, n_init=1, batch_size=4096, max_iter=max_iter, random_state=seed).fit(x)
        else:
            model = KMeans(n_clusters=k, n_init=1, max_iter=max_iter, random_state=seed).fit(x)
    return model.cluster_centers_.astype(np.float32), model.labels_.astype(np.int64)
