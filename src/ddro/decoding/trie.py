"""`DocidTrie`: an array-based prefix trie over docids, queried a whole batch at a time.

Layout (all flat numpy arrays; no Python objects per node):

- `sorted_codes` [n, L]: every docid, rows sorted lexicographically, padded with -1. Any prefix
  is a contiguous range of rows.
- Nodes exist only where docids branch: a prefix shared by two or more docids. Node ids are
  assigned level by level, in row order; the root (the empty prefix) is node 0.
- Edges, sorted by `edge_key = parent_node * vocab_size + token` (sorted because parents and,
  within a parent, tokens come in row order): `edge_child` is the child node, or `-(row + 1)` when
  the child prefix belongs to one docid only (a *singleton*, followed from then on directly in
  `sorted_codes[row]`). `node_edge_start` gives each node's edges (CSR).

A search state is one int64: `>= 0` a node, `< 0` a singleton row `-(row + 1)`, `DEAD` a prefix
that is no docid's. With random PQ-style docids almost every docid becomes a singleton within a
few tokens, so the trie costs about `2 * L + 13` bytes per docid, and a step is one
`searchsorted` over the edges for a whole batch of states.

Queries run in torch (CPU or GPU: `to(device)`), so beam search can carry states from step to
step; building uses numpy only.
"""

from __future__ import annotations

import numpy as np

PAD = -1
DEAD = -(2**62)


def gather(table, index):
    """`table[index]` for a 1-D tensor `table`: `index_select` is several times faster than
    indexing on CPU (the search's steps are mostly such lookups)."""
    return table.index_select(0, index.reshape(-1)).view(index.shape)


class DocidTrie:
    def __init__(self, sequences, vocab_size: int | None = None):
        """`sequences`: int array [n, L] of token ids, rows padded with -1 after their end."""
        codes = np.asarray(sequences)
        if codes.ndim != 2 or len(codes) == 0:
            raise ValueError("sequences must be a non-empty [n, L] array")
        top = int(codes.max())
        self.vocab_size = int(vocab_size) if vocab_size is not None else top + 1
        if top >= self.vocab_size:
            raise ValueError(f"token id {top} >= vocab_size {self.vocab_size}")
        dtype = np.int16 if self.vocab_size <= np.iinfo(np.int16).max else np.int32
        codes = codes.astype(dtype, copy=False)
        self.n, self.max_len = codes.shape
        # Lexicographic row order: lexsort's last key is the primary one.
        self.order = np.lexsort(codes.T[::-1]).astype(np.int32)
        self.sorted_codes = np.ascontiguousarray(codes[self.order])
        self._build_edges()
        self._torch: dict = {}

    # --- building -------------------------------------------------------------------------
    def _build_edges(self) -> None:
        n, length, v = self.n, self.max_len, self.vocab_size
        codes = self.sorted_codes
        # lcp[i]: length of the common prefix of rows i and i+1 (length when identical).
        lcp = np.full(max(n - 1, 0), length, dtype=np.int32)
        for col in range(length - 1, -1, -1):  # column by column keeps memory at O(n)
            lcp[codes[1:, col] != codes[:-1, col]] = col
        # Level 0: one group, the root, covering every row.
        starts = np.zeros(1, dtype=np.int64)
        sizes = np.array([n], dtype=np.int64)
        node_ids = np.where(sizes >= 2, 0, -1)
        n_nodes = int((sizes >= 2).sum())
        keys, children, node_lo, node_hi = [], [], [starts[sizes >= 2]], [(starts + sizes)[sizes >= 2]]
        for depth in range(length):
            if not (node_ids >= 0).any():
                break
            # Groups of prefix length depth + 1.
            child_starts = np.concatenate(([0], np.flatnonzero(lcp < depth + 1) + 1)).astype(np.int64)
            child_sizes = np.diff(np.append(child_starts, n))
            branching = child_sizes >= 2
            child_node_ids = np.full(len(child_starts), -1, dtype=np.int64)
            child_node_ids[branching] = n_nodes + np.arange(int(branching.sum()))
            parent = np.searchsorted(starts, child_starts, side="right") - 1
            parent_node = node_ids[parent]
            tokens = codes[child_starts, depth].astype(np.int64)
            keep = (parent_node >= 0) & (tokens != PAD)
            keys.append(parent_node[keep] * v + tokens[keep])
            children.append(np.where(branching, child_node_ids, -(child_starts + 1))[keep])
            node_lo.append(child_starts[branching])
            node_hi.append((child_starts + child_sizes)[branching])
            n_nodes += int(branching.sum())
            starts, node_ids = child_starts, child_node_ids
        self.edge_key = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
        self.edge_child = np.concatenate(children).astype(np.int64) if children else np.zeros(0, dtype=np.int64)
        if self.n <= np.iinfo(np.int32).max:
            self.edge_child = self.edge_child.astype(np.int32)
        self.n_nodes = n_nodes
        self.node_lo = np.concatenate(node_lo).astype(np.int64)
        self.node_hi = np.concatenate(node_hi).astype(np.int64)
        parents = self.edge_key // v
        self.node_edge_start = np.searchsorted(parents, np.arange(n_nodes + 1)).astype(np.int64)

    @classmethod
    def from_table(cls, table, token_ids=None, vocab_size: int | None = None) -> "DocidTrie":
        """A trie over a `DocidTable`'s docids; `token_ids[i]` maps table vocabulary entry i to the
        model's token id (default: the table's own indices)."""
        codes = table.codes.astype(np.int64)
        if token_ids is not None:
            mapped = np.asarray(token_ids, dtype=np.int64)[np.maximum(codes, 0)]
            codes = np.where(codes == PAD, PAD, mapped)
        return cls(codes, vocab_size if vocab_size is not None else (len(table.vocab) if token_ids is None else None))

    @property
    def nbytes(self) -> int:
        arrays = (self.order, self.sorted_codes, self.edge_key, self.edge_child, self.node_lo, self.node_hi,
                  self.node_edge_start)
        return sum(a.nbytes for a in arrays)

    def __len__(self) -> int:
        return self.n

    # --- queries (torch) --------------------------------------------------------------------
    def _t(self, device):
        import torch

        key = str(device)
        if key not in self._torch:
            self._torch[key] = {
                name: torch.from_numpy(getattr(self, name)).to(device)
                for name in ("sorted_codes", "edge_key", "edge_child", "node_edge_start", "order", "node_lo", "node_hi")
            }
        return self._torch[key]

    def root_states(self, batch_size: int, device="cpu"):
        import torch

        root = 0 if self.n_nodes > 0 else -1  # a one-docid trie starts as a singleton
        return torch.full((batch_size,), root, dtype=torch.int64, device=device)

    def _codes_at(self, rows, depth):
        """`sorted_codes[rows, depth]` as int64, PAD past the end; `depth` an int or per-row tensor."""
        import torch

        codes = self._t(rows.device)["sorted_codes"]
        if isinstance(depth, int):
            if depth >= self.max_len:
                return torch.full_like(rows, PAD)
            return gather(codes.view(-1), rows * self.max_len + depth).to(torch.int64)
        values = gather(codes.view(-1), rows * self.max_len + depth.clamp(max=self.max_len - 1)).to(torch.int64)
        return torch.where(depth < self.max_len, values, torch.full_like(values, PAD))

    def _singleton_rows(self, states):
        """Row of each singleton state (0 for other states, which callers mask out)."""
        return (-states - 1).clamp(0, self.n - 1)

    def advance(self, states, tokens, depth):
        """States after appending `tokens` (one per state) at position `depth` (0-based; an int,
        or a tensor with one depth per state).

        Computed for every state at once and masked, so that no step waits on the device
        (no boolean indexing, no `.any()`).
        """
        import torch

        t = self._t(states.device)
        tokens = tokens.to(torch.int64)
        dead = torch.full_like(states, DEAD)
        node = states >= 0
        single = (states < 0) & (states != DEAD)
        if len(self.edge_key):
            keys = states.clamp(min=0) * self.vocab_size + tokens
            idx = torch.searchsorted(t["edge_key"], keys).clamp(max=len(self.edge_key) - 1)
            child = torch.where(gather(t["edge_key"], idx) == keys, gather(t["edge_child"], idx).to(torch.int64), dead)
        else:
            child = dead
        follows = self._codes_at(self._singleton_rows(states), depth) == tokens
        return torch.where(node, child, torch.where(single & follows, states, dead))

    def allowed(self, states, depth):
        """Allowed next tokens as index lists: `(state_index, token)` tensors, node edges in
        token order. `depth` (the prefix length) is an int or one per state.

        The lists' sizes are the only values read back from the device (two reads per call)."""
        import torch

        t = self._t(states.device)
        node = states >= 0
        parent = states.clamp(min=0, max=max(self.n_nodes - 1, 0))
        starts = gather(t["node_edge_start"], parent)
        counts = torch.where(node, gather(t["node_edge_start"], (parent + 1).clamp(max=self.n_nodes)) - starts, 0)
        total = int(counts.sum())
        owner = torch.repeat_interleave(torch.arange(len(states), device=states.device), counts, output_size=total)
        first = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts, output_size=total)
        node_tokens = gather(t["edge_key"], first + torch.arange(total, device=states.device)) % self.vocab_size
        single_tokens = self._codes_at(self._singleton_rows(states), depth)
        single_pos = torch.nonzero((states < 0) & (states != DEAD) & (single_tokens != PAD)).flatten()
        return torch.cat([owner, single_pos]), torch.cat([node_tokens, single_tokens[single_pos]])

    def allowed_mask(self, states, depth, vocab_size: int | None = None):
        """Boolean [batch, vocab] mask of allowed next tokens."""
        import torch

        rows, tokens = self.allowed(states, depth)
        mask = torch.zeros((len(states), vocab_size or self.vocab_size), dtype=torch.bool, device=states.device)
        mask[rows, tokens] = True
        return mask

    def is_complete(self, states, depth):
        """Whether each state's prefix is a whole docid (`depth`: an int or one per state)."""
        import torch

        t = self._t(states.device)
        # Padding sorts first, so a docid ending at a node is the node's first row.
        node_rows = gather(t["node_lo"], states.clamp(min=0, max=max(self.n_nodes - 1, 0))) if self.n_nodes else states.clamp(min=0)
        rows = torch.where(states >= 0, node_rows, self._singleton_rows(states))
        return (self._codes_at(rows, depth) == PAD) & (states != DEAD)

    def rows_of(self, state: int) -> np.ndarray:
        """Indices (into the original sequences) of the docids below a state."""
        if state == DEAD:
            return np.zeros(0, dtype=np.int64)
        if state < 0:
            return self.order[[-state - 1]].astype(np.int64)
        return self.order[self.node_lo[state]:self.node_hi[state]].astype(np.int64)

    # --- convenience: whole prefixes ----------------------------------------------------------
    def walk(self, prefixes, lengths=None):
        """States of a batch of prefixes ([B, D] tensor; `lengths` [B] when they differ)."""
        import torch

        prefixes = torch.as_tensor(prefixes)
        states = self.root_states(prefixes.shape[0], prefixes.device)
        for depth in range(prefixes.shape[1]):
            nxt = self.advance(states, prefixes[:, depth], depth)
            states = nxt if lengths is None else torch.where(torch.as_tensor(lengths) > depth, nxt, states)
        return states

    def next_tokens_mask(self, prefixes, lengths=None, vocab_size: int | None = None):
        """Boolean [B, vocab] mask of the tokens that may follow each prefix, in one batched call;
        `lengths` [B] gives each prefix's length when they differ (the rest of the row is ignored)."""
        import torch

        prefixes = torch.as_tensor(prefixes)
        depth = prefixes.shape[1] if lengths is None else torch.as_tensor(lengths, device=prefixes.device)
        return self.allowed_mask(self.walk(prefixes, lengths), depth, vocab_size)
