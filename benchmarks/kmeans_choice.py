"""Which k-means for docids on large inputs: scikit-learn's KMeans, its MiniBatchKMeans, faiss.

    python benchmarks/kmeans_choice.py --sizes 100000,1000000 --dims 96,384 --json

Data: `--blobs` Gaussian blobs in `--dims` dimensions (a seeded stand-in for document embeddings),
K = 256 centroids as PQ/RQ use. For each method: seconds and the mean squared distance of every
point to its nearest centroid (lower is better). Full KMeans is skipped above `--full-up-to`
points (it grows as N x K x D x iterations); faiss only when faiss-cpu is installed (it is not a
ddro dependency). One JSON line per (size, dims).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np


def blobs(n: int, d: int, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(count, d)).astype(np.float32)
    return (centers[rng.integers(0, count, n)] + 0.5 * rng.normal(size=(n, d))).astype(np.float32)


def error(centroids: np.ndarray, x: np.ndarray, chunk: int = 65536) -> float:
    """Mean squared distance to the nearest centroid."""
    c2 = (centroids ** 2).sum(1)
    total = 0.0
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk]
        total += float(((part ** 2).sum(1) + (c2[None, :] - 2 * part @ centroids.T).min(1)).sum())
    return total / len(x)


def methods(k: int, seed: int, full_up_to: int, n: int):
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if n <= full_up_to:
        yield "sklearn-kmeans", lambda x: KMeans(k, n_init=1, max_iter=100, random_state=seed).fit(x).cluster_centers_
    yield "sklearn-minibatch", lambda x: MiniBatchKMeans(k, n_init=1, batch_size=4096, random_state=seed).fit(
        x).cluster_centers_
    try:
        import faiss
    except ImportError:
        return

    def faiss_kmeans(x):
        model = faiss.Kmeans(x.shape[1], k, niter=25, seed=seed)
        model.train(x)
        return model.centroids

    yield "faiss", faiss_kmeans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dims", default="96,384")
    parser.add_argument("--k", type=int, default=256)
    parser.add_argument("--blobs", type=int, default=2000)
    parser.add_argument("--full-up-to", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for n in map(int, args.sizes.split(",")):
        for d in map(int, args.dims.split(",")):
            x = blobs(n, d, args.blobs, args.seed)
            row = {"points": n, "dims": d, "k": args.k}
            for name, fit in methods(args.k, args.seed, args.full_up_to, n):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    start = time.perf_counter()
                    centroids = np.asarray(fit(x), dtype=np.float32)
                row[name] = {"seconds": round(time.perf_counter() - start, 2), "error": round(error(centroids, x), 3)}
            print(json.dumps(row) if args.json else row, flush=True)


if __name__ == "__main__":
    main()
