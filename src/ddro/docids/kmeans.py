"""Seeded k-means, the one clustering routine behind pq, rq and hkmeans."""

from __future__ import annotations

import warnings

import numpy as np


def kmeans(x: np.ndarray, k: int, seed: int, max_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Cluster rows of `x` into at most `k` clusters; returns (centroids [k', d], labels [n]).

    k is lowered to the number of distinct rows when there are fewer (a tiny corpus), so every
    centroid is used. Deterministic for a given seed (k-means++ init, one run).
    """
    from sklearn.cluster import KMeans

    x = np.ascontiguousarray(x, dtype=np.float32)
    distinct = len(np.unique(x, axis=0)) if len(x) <= 4 * k else k
    k = max(1, min(k, distinct))
    if k == 1:
        return x.mean(axis=0, keepdims=True), np.zeros(len(x), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = KMeans(n_clusters=k, n_init=1, max_iter=max_iter, random_state=seed).fit(x)
    return model.cluster_centers_.astype(np.float32), model.labels_.astype(np.int64)
