"""Product quantization docids (Ultron/DDRO `pq`): M sub-spaces x K centroids.

The embedding's dimensions are cut into M contiguous sub-spaces (as equal as possible); each is
clustered into K centroids; the docid is the M centroid numbers, and the code c of sub-space m is
its own token `<pq_m_c>`, so every docid has exactly M tokens and M*K tokens join the vocabulary
(the paper: M=24, K=256, 6,144 tokens).
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ddro.docids.codebooks import Codebook
from ddro.docids.kmeans import kmeans
from ddro.errors import DdroError


def subspaces(dimensions: int, m: int) -> list[np.ndarray]:
    """The dimension indices of each of the M contiguous sub-spaces (as equal as possible)."""
    return np.array_split(np.arange(dimensions), m)


def pq_codes(embeddings: np.ndarray, m: int, k: int, seed: int) -> tuple[np.ndarray, list[str], Codebook]:
    """`(codes, vocab, codebook)`: each document's M codes, the M*K tokens, and the centroids kept."""
    if m < 1 or k < 1:
        raise DdroError(f"pq needs M >= 1 and K >= 1 (got M={m}, K={k})")
    if m > embeddings.shape[1]:
        raise DdroError(f"pq: M={m} sub-spaces exceed the embedding's {embeddings.shape[1]} dimensions")
    codes = np.zeros((len(embeddings), m), dtype=np.int32)
    groups = []
    dims_of = subspaces(embeddings.shape[1], m)
    for sub, dims in enumerate(tqdm(dims_of, desc="pq sub-spaces")):
        centroids, labels = kmeans(embeddings[:, dims], k, seed + sub)
        codes[:, sub] = sub * k + labels
        groups.append(centroids)
    vocab = [f"<pq_{sub}_{c}>" for sub in range(m) for c in range(k)]
    bounds = np.array([0] + [int(dims[-1]) + 1 for dims in dims_of])
    return codes, vocab, Codebook.from_groups("pq", k, groups, bounds=bounds)
