"""Residual quantization docids: L levels x K codes.

Level 1 clusters the embeddings into K centroids; each next level clusters what the previous
levels left unexplained (the residual). Token `<rq_l_c>` is code c at level l; L*K tokens.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ddro.docids.codebooks import Codebook
from ddro.docids.kmeans import kmeans
from ddro.errors import DdroError


def rq_codes(embeddings: np.ndarray, levels: int, k: int, seed: int) -> tuple[np.ndarray, list[str], Codebook]:
    """`(codes, vocab, codebook)`: each document's L codes, the L*K tokens, and the centroids kept."""
    if levels < 1 or k < 1:
        raise DdroError(f"rq needs L >= 1 and K >= 1 (got L={levels}, K={k})")
    residual = embeddings.astype(np.float32, copy=True)
    codes = np.zeros((len(embeddings), levels), dtype=np.int32)
    groups = []
    for level in tqdm(range(levels), desc="rq levels"):
        centroids, labels = kmeans(residual, k, seed + level)
        residual -= centroids[labels]
        codes[:, level] = level * k + labels
        groups.append(centroids)
    vocab = [f"<rq_{level}_{c}>" for level in range(levels) for c in range(k)]
    return codes, vocab, Codebook.from_groups("rq", k, groups)
