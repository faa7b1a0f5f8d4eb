"""The codebooks of computed docids (pq, rq, hkmeans), kept so that a new document gets its code
from the centroids every other document's code came from, without moving anyone else's.

A codebook is the centroids k-means found when the table was built, and `encode` gives
embeddings their codes as the build did: the nearest centroid (squared Euclidean distance, the
first on a tie), sub-space by sub-space (pq), residual by residual (rq) or node by node down the
tree (hkmeans; the path only, the leaf position is the table's business: `ddro.docids.growth`).
k-means labels every point with its nearest final centroid, so `encode` of the documents a table
was built from gives their codes back (checked on the real collections by
`tests/test_realdata_docids.py`).

On disk (`<table>/codebook/`): `codebook.json` (kind, sizes, the pq sub-spaces' bounds, the tree's
shape) and `centroids.npy` (float32 `[groups, K, width]`: a sub-space's, a level's or a tree
node's centroids, zero-padded; `counts[g]` of them are real: k-means finds fewer than K on a
collection with fewer distinct points). Plain files, no pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ddro.errors import DdroError

KINDS = ("pq", "rq", "hkmeans")
FORMAT = "ddro-codebook/1"


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """For each row of `x`, the index of its nearest centroid (squared Euclidean distance in float64;
    the lowest index on a tie)."""
    x = np.asarray(x, dtype=np.float64)
    c = np.asarray(centroids, dtype=np.float64)
    distances = (x * x).sum(axis=1)[:, None] - 2.0 * x @ c.T + (c * c).sum(axis=1)[None, :]
    return distances.argmin(axis=1)


@dataclass
class Codebook:
    """The centroids of one computed table. `groups` are pq's sub-spaces, rq's levels or hkmeans'
    tree nodes (node 0 the root); `k` is the scheme's codes per group (the vocabulary's stride)."""

    kind: str
    k: int
    centroids: np.ndarray  # float32 [groups, k, width], zero-padded
    counts: np.ndarray  # int64 [groups]: real centroids of each group
    # pq: the dimension bounds of each sub-space ([groups + 1]); others: None.
    bounds: np.ndarray | None = None
    # hkmeans: each node's parent node (-1 for the root) and the cluster it is in its parent.
    parents: np.ndarray | None = None
    branches: np.ndarray | None = None
    _children: dict | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"codebook kind {self.kind!r}: one of {', '.join(KINDS)}")
        self.centroids = np.asarray(self.centroids, dtype=np.float32)
        self.counts = np.asarray(self.counts, dtype=np.int64)

    # --- building -------------------------------------------------------------------------
    @classmethod
    def from_groups(cls, kind: str, k: int, groups: list[np.ndarray], width: int | None = None, **shape) -> "Codebook":
        """A codebook from each group's centroids (`[count, width]` arrays, counts and widths may
        differ; `width`: the embeddings', needed when there is no group: an hkmeans tree of one leaf)."""
        width = width or max(g.shape[1] for g in groups)
        centroids = np.zeros((len(groups), k, width), dtype=np.float32)
        for i, g in enumerate(groups):
            centroids[i, : len(g), : g.shape[1]] = g
        return cls(kind, k, centroids, np.array([len(g) for g in groups]), **shape)

    def _group(self, g: int, width: int | None = None) -> np.ndarray:
        return self.centroids[g, : self.counts[g], : width or self.centroids.shape[2]]

    # --- codes ----------------------------------------------------------------------------
    def encode(self, embeddings: np.ndarray) -> np.ndarray | list[list[int]]:
        """The codes (vocabulary indices) of `embeddings` (`[n, dims]`): pq and rq an `[n, groups]`
        array; hkmeans each row's tree path as `level * k + cluster` codes, a list of lists."""
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if self.kind == "pq":
            return self._encode_pq(embeddings)
        if self.kind == "rq":
            return self._encode_rq(embeddings)
        return self._encode_tree(embeddings)

    def _encode_pq(self, embeddings):
        if embeddings.shape[1] != self.bounds[-1]:
            raise DdroError(f"pq codebook of {self.bounds[-1]} dimensions given {embeddings.shape[1]}-d embeddings")
        codes = np.zeros((len(embeddings), len(self.counts)), dtype=np.int32)
        for g, (start, stop) in enumerate(zip(self.bounds[:-1], self.bounds[1:])):
            codes[:, g] = g * self.k + nearest(embeddings[:, start:stop], self._group(g, stop - start))
        return codes

    def _encode_rq(self, embeddings):
        self._check_width(embeddings)
        residual = embeddings.copy()
        codes = np.zeros((len(embeddings), len(self.counts)), dtype=np.int32)
        for level in range(len(self.counts)):
            labels = nearest(residual, self._group(level))
            residual -= self._group(level)[labels]
            codes[:, level] = level * self.k + labels
        return codes

    def _encode_tree(self, embeddings):
        self._check_width(embeddings)
        if self._children is None:
            self._children = {(int(p), int(b)): node for node, (p, b) in enumerate(zip(self.parents, self.branches))
                              if p >= 0}
        paths = []
        for x in embeddings:
            node, path = (0 if len(self.counts) else None), []
            while node is not None:
                cluster = int(nearest(x[None, :], self._group(node))[0])
                path.append(len(path) * self.k + cluster)
                node = self._children.get((node, cluster))
            paths.append(path)
        return paths

    def _check_width(self, embeddings):
        if embeddings.shape[1] != self.centroids.shape[2]:
            raise DdroError(f"{self.kind} codebook of {self.centroids.shape[2]} dimensions given "
                            f"{embeddings.shape[1]}-d embeddings")

    # --- files ----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "centroids.npy", self.centroids)
        meta = {"format": FORMAT, "kind": self.kind, "k": self.k, "counts": self.counts.tolist()}
        for name in ("bounds", "parents", "branches"):
            if getattr(self, name) is not None:
                meta[name] = getattr(self, name).tolist()
        (folder / "codebook.json").write_text(json.dumps(meta) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> "Codebook":
        from ddro.collections.textio import read_json_file

        folder = Path(folder)
        meta_path = folder / "codebook.json"
        meta = read_json_file(meta_path)
        if meta.get("format") != FORMAT or meta.get("kind") not in KINDS:
            raise DdroError(f"{meta_path}: not a {FORMAT} codebook of kind {' / '.join(KINDS)}")
        try:
            centroids = np.load(folder / "centroids.npy", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DdroError(f"{folder / 'centroids.npy'}: unreadable ({str(exc).splitlines()[0][:120]})") from None
        counts = meta.get("counts")
        if (centroids.ndim != 3 or not isinstance(counts, list) or len(counts) != len(centroids)
                or not isinstance(meta.get("k"), int) or centroids.shape[1] != meta["k"]
                or not all(isinstance(c, int) and 1 <= c <= centroids.shape[1] for c in counts)):
            raise DdroError(f"{meta_path}: 'counts' does not describe centroids.npy of shape {centroids.shape}")
        shape = {name: np.asarray(meta[name], dtype=np.int64) for name in ("bounds", "parents", "branches")
                 if name in meta}
        return cls(meta["kind"], int(meta["k"]), centroids, np.asarray(counts), **shape)
