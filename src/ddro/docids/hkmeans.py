"""Hierarchical k-means docids (DSI/NCI "semantic" docids).

Documents are clustered into k groups, and every group larger than `leaf_size` is clustered
again, recursively. A docid is the path of cluster numbers (`<hk_level_c>`) followed by the
document's position inside its final group (`<hk_leaf_p>`, in collection order). Docids are
unique by construction, their length varies with the depth of the group, and no docid is a prefix
of another (the leaf token always ends one).
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ddro.docids.codebooks import Codebook
from ddro.docids.kmeans import kmeans
from ddro.docids.table import pad_rows
from ddro.errors import DdroError


def hkmeans_codes(embeddings: np.ndarray, k: int, leaf_size: int, seed: int) -> tuple[np.ndarray, list[str], Codebook]:
    """`(codes, vocab, codebook)`: each document's path and leaf position, the tokens, and every
    tree node's centroids (with its parent and branch) kept."""
    if k < 2 or leaf_size < 1:
        raise DdroError(f"hkmeans needs k >= 2 and leaf size >= 1 (got k={k}, leaf size={leaf_size})")
    paths: list[list[tuple[int, int]]] = [[] for _ in range(len(embeddings))]  # (level, cluster)
    leaf_rank = np.zeros(len(embeddings), dtype=np.int64)
    nodes: list[np.ndarray] = []  # each clustered group's centroids, in the order they were clustered
    parents: list[int] = []
    branches: list[int] = []
    stack = [(np.arange(len(embeddings)), 0, -1, 0)]  # members, level, parent node, branch in the parent
    progress = tqdm(total=len(embeddings), desc="hkmeans", unit="doc")
    while stack:
        members, level, parent, branch = stack.pop()
        if len(members) <= leaf_size:
            leaf_rank[members] = np.arange(len(members))
            progress.update(len(members))
            continue
        centroids, labels = kmeans(embeddings[members], k, seed + level)
        if labels.max() == 0:  # identical embeddings: split them evenly instead of forever
            labels = np.arange(len(members)) * k // len(members)
        node = len(nodes)
        nodes.append(centroids)
        parents.append(parent)
        branches.append(branch)
        for cluster in range(int(labels.max()) + 1):
            part = members[labels == cluster]
            for doc in part:
                paths[doc].append((level, cluster))
            stack.append((part, level + 1, node, cluster))
    progress.close()
    depth = max(len(p) for p in paths)
    vocab = [f"<hk_{level}_{c}>" for level in range(depth) for c in range(k)]
    leaf_base = len(vocab)
    vocab += [f"<hk_leaf_{p}>" for p in range(leaf_size)]
    rows = [[level * k + c for level, c in path] + [leaf_base + int(leaf_rank[doc])] for doc, path in enumerate(paths)]
    codebook = Codebook.from_groups("hkmeans", k, nodes, width=embeddings.shape[1],
                                    parents=np.array(parents, dtype=np.int64), branches=np.array(branches, dtype=np.int64))
    return pad_rows(rows), vocab, codebook
