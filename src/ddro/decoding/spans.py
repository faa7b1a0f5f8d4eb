"""`SpanIndex`: a suffix array over a corpus' tokens, queried as a whole batch of search states.

N-gram docids (SEAL) let the model generate any span of any document. A span is valid while it
occurs in the corpus, so the constraint is a substring index instead of a trie of fixed docids.

Layout (flat numpy arrays, saved as `.npy`):

- `text` [N + pad]: every document's token codes plus one, each document followed by a 0 (the
  separator, which no span crosses), then zeros so reads past a suffix's end stay in bounds.
- `suffix_array` [N] (`pydivsufsort`, linear time): the start of every suffix, in sorted order.
  The suffixes that begin with a span form one contiguous range `[lo, hi)`: its size is the
  span's number of occurrences, and the codes that follow the span are sorted within it.
- *Nodes*: the ranges with more than `window` suffixes, precomputed to `max_tokens` depth with
  their children (CSR, `edge_key = node * (vocab + 1) + code + 1`, `edge_lo`, `edge_hi`), so a
  step never scans a large range. A smaller range is read whole: its next codes are the `window`
  entries `text[suffix_array[lo + j] + depth]`, already sorted, so one gather gives the distinct
  next tokens and two counts the child range.

A search state is three int64 `(lo, hi, node)`: a live span, `hi == lo` a dead one (not in the
corpus), and `lo < 0` a span ended by EOS (`lo = -(range start) - 1`); `node` is the range's node
index, or -1 for a range read whole, so a step finds a state's edges without looking its range up
(each edge knows its child's node, `edge_child`, derived when the index is loaded). The depth is
the beam step, as for
`DocidTrie`, whose interface (`root_states`, `allowed`, `advance`, `is_complete`) this mirrors,
so `ddro.decoding.beam_search` drives either. EOS may end any span of at least `min_tokens`
tokens, and is the only token allowed at `max_tokens`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ddro.decoding.trie import gather
from ddro.errors import DdroError

# Ranges of at most this many suffixes are read whole in a step instead of precomputed: 8 measured
# faster than 64 or 16 on NPL (benchmarks/span_index.py) for 1.4 times the memory of 64.
DEFAULT_WINDOW = 8
_ARRAYS = ("text", "suffix_array", "doc_starts", "node_key", "node_edge_start", "edge_key", "edge_lo", "edge_hi")


class SpanIndex:
    def __init__(self, arrays: dict, vocab_size: int, max_tokens: int, window: int, min_tokens: int = 1):
        for name in _ARRAYS:
            setattr(self, name, arrays[name])
        self.vocab_size, self.max_tokens, self.window, self.min_tokens = vocab_size, max_tokens, window, min_tokens
        self.n = len(self.suffix_array)
        self.edge_code, self.edge_child = _edge_children(self.node_key, self.node_edge_start, self.edge_key,
                                                         self.edge_lo, vocab_size, self.n)
        self._torch: dict = {}
        self._decoder: tuple | None = None

    # --- building -------------------------------------------------------------------------
    @classmethod
    def build(cls, codes: np.ndarray, offsets: np.ndarray, vocab_size: int, max_tokens: int,
              window: int = DEFAULT_WINDOW) -> "SpanIndex":
        """An index over documents whose codes (`0 <= code < vocab_size`) are `codes[offsets[i]:offsets[i + 1]]`."""
        from pydivsufsort import divsufsort, kasai

        codes, offsets = np.asarray(codes, dtype=np.int64), np.asarray(offsets, dtype=np.int64)
        n_docs = len(offsets) - 1
        if n_docs < 1 or (len(codes) and (codes.min() < 0 or codes.max() >= vocab_size)):
            raise ValueError("codes must be in [0, vocab_size) and there must be at least one document")
        n = len(codes) + n_docs
        dtype = np.int32 if n + max_tokens < np.iinfo(np.int32).max else np.int64
        doc_starts = offsets[:-1] + np.arange(n_docs)  # each earlier document adds its separator
        text = np.zeros(n + max_tokens + 1, dtype=dtype)
        body = np.ones(n, dtype=bool)
        body[offsets[1:] + np.arange(n_docs)] = False
        text[:n][body] = codes + 1
        suffix_array = divsufsort(text[:n]).astype(dtype)
        # lcp[i]: the common prefix length of suffixes i - 1 and i (-1 before the first).
        lcp = np.concatenate([np.full(1, -1, dtype=np.int32), kasai(text[:n], suffix_array)[:-1].astype(np.int32)])
        arrays = {"text": text, "suffix_array": suffix_array, "doc_starts": doc_starts.astype(dtype)}
        arrays |= _nodes(text, suffix_array, lcp, vocab_size, max_tokens, window)
        return cls(arrays, vocab_size, max_tokens, window)

    @property
    def n_docs(self) -> int:
        return len(self.doc_starts)

    @property
    def n_tokens(self) -> int:
        """Tokens of the documents (separators not counted)."""
        return self.n - self.n_docs

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in _ARRAYS)

    # --- files ----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        import json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in _ARRAYS:
            np.save(folder / f"{name}.npy", getattr(self, name))
        meta = {"format": "ddro-span-index/1", "vocab_size": self.vocab_size, "max_tokens": self.max_tokens,
                "window": self.window, "tokens": self.n_tokens, "documents": self.n_docs}
        (folder / "span_index.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> "SpanIndex":
        from ddro.collections.textio import read_json_file

        folder = Path(folder)
        meta = read_json_file(folder / "span_index.json")
        arrays = {}
        for name in _ARRAYS:
            try:
                arrays[name] = np.load(folder / f"{name}.npy", allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                raise DdroError(f"{folder / (name + '.npy')}: unreadable ({str(exc).splitlines()[0][:120]})") from None
        for key in ("vocab_size", "max_tokens", "window"):
            if isinstance(meta.get(key), bool) or not isinstance(meta.get(key), int):
                raise DdroError(f"{folder / 'span_index.json'}: '{key}' must be an integer, found {meta.get(key)!r}")
        return cls(arrays, meta["vocab_size"], meta["max_tokens"], meta["window"])

    # --- decoder tokens ---------------------------------------------------------------------
    def for_decoder(self, token_ids, eos_token_id: int, decoder_vocab_size: int) -> "SpanIndex":
        """Query in the decoder's token ids: `token_ids[code]` is the decoder id of code `code`."""
        token_ids = np.asarray(token_ids, dtype=np.int64)
        code_of = np.full(decoder_vocab_size, -1, dtype=np.int64)
        code_of[token_ids] = np.arange(len(token_ids))
        code_of[eos_token_id] = -1
        self._decoder = (token_ids, code_of, int(eos_token_id))
        self._torch = {}
        return self

    def _t(self, device):
        import torch

        key = str(device)
        if key not in self._torch:
            if self._decoder is None:
                raise RuntimeError("call for_decoder() before searching")
            token_ids, code_of, _ = self._decoder
            arrays = {name: getattr(self, name) for name in _ARRAYS} | {
                "token_ids": token_ids, "code_of": code_of, "edge_child": self.edge_child,
                "edge_token": token_ids[self.edge_code - 1], "window_offsets": np.arange(self.window),
                "dead": np.array([0, 0, -1]), "end_sign": np.array([-1, 1, 0]), "end_shift": np.array([-1, 0, -1])}
            self._torch[key] = {name: torch.from_numpy(np.ascontiguousarray(a)).to(device) for name, a in arrays.items()}
        return self._torch[key]

    # --- queries (torch) --------------------------------------------------------------------
    def root_states(self, batch_size: int, device="cpu"):
        import torch

        root = torch.tensor([0, self.n, 0 if len(self.node_key) else -1], dtype=torch.int64, device=device)
        return root.expand(batch_size, 3).clone()

    @staticmethod
    def _split(states, extend):
        """Of the states to extend: those whose range is a node (their indices and the nodes'), and
        those read whole. Each part is processed alone (on CPU a few small operations are cheaper
        than one computation masked over every state)."""
        import torch

        node = states[:, 2]
        rows = torch.nonzero(extend & (node >= 0)).flatten()
        return rows, node.index_select(0, rows), torch.nonzero(extend & (node < 0)).flatten()

    def _window(self, t, lo, hi, depth: int):
        """The next codes plus one of the first `window` suffixes of each range ([states, window],
        sorted along a row) and which of them belong to the range."""
        import torch

        offsets = t["window_offsets"]
        valid = offsets < (hi - lo)[:, None]
        rows = (lo[:, None] + offsets).clamp_(max=max(self.n - 1, 0))
        # In the arrays' own dtype (int32 below 2**31 tokens): index_select takes int32 indices.
        return gather(t["text"], gather(t["suffix_array"], rows) + depth), valid

    def allowed(self, states, depth: int):
        """Allowed next tokens as index lists `(state_index, decoder token)`, as `DocidTrie.allowed`."""
        import torch

        t = self._t(states.device)
        lo, hi = states[:, 0], states[:, 1]
        live = (lo >= 0) & (hi > lo)
        owners, tokens = [], []
        if depth < self.max_tokens:
            node_rows, nodes, light = self._split(states, live)
            if len(nodes):
                starts = gather(t["node_edge_start"], nodes)
                counts = gather(t["node_edge_start"], nodes + 1) - starts
                total = int(counts.sum())
                owners.append(torch.repeat_interleave(node_rows, counts, output_size=total))
                first = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts, output_size=total)
                tokens.append(gather(t["edge_token"], first + torch.arange(total, device=states.device)))
            if len(light):
                values, valid = self._window(t, lo.index_select(0, light), hi.index_select(0, light), depth)
                previous = torch.cat([torch.zeros_like(values[:, :1]), values[:, :-1]], 1)
                flat = torch.nonzero((valid & (values > 0) & (values != previous)).view(-1)).flatten()
                owners.append(light.index_select(0, flat // self.window))
                tokens.append(gather(t["token_ids"], values.view(-1).index_select(0, flat) - 1))
        if depth >= self.min_tokens:
            owners.append(torch.nonzero(live).flatten())
            tokens.append(torch.full_like(owners[-1], self._decoder[2]))
        if not owners:
            return states.new_zeros(0), states.new_zeros(0)
        return torch.cat(owners), torch.cat(tokens)

    def advance(self, states, tokens, depth: int):
        """States after appending `tokens` (decoder ids, one per state) at position `depth`."""
        import torch

        t = self._t(states.device)
        lo, hi = states[:, 0], states[:, 1]
        live = (lo >= 0) & (hi > lo)
        value = gather(t["code_of"], tokens.clamp(0, len(t["code_of"]) - 1)) + 1
        out = t["dead"].expand(len(states), 3).clone()
        if depth < self.max_tokens:
            node_rows, nodes, light = self._split(states, live & (value > 0))
            if len(nodes) and len(self.edge_key):  # a state of a node without edges stays dead
                keys = nodes * (self.vocab_size + 1) + value.index_select(0, node_rows)
                index = torch.searchsorted(t["edge_key"], keys).clamp_(max=len(self.edge_key) - 1)
                found = (gather(t["edge_key"], index) == keys)[:, None]
                child = torch.stack([gather(t["edge_lo"], index), gather(t["edge_hi"], index),
                                     gather(t["edge_child"], index)], 1)
                out.index_copy_(0, node_rows, torch.where(found, child, t["dead"]))
            if len(light):  # a range read whole has no node below it
                start = lo.index_select(0, light)
                values, valid = self._window(t, start, hi.index_select(0, light), depth)
                wanted = value.index_select(0, light).to(values.dtype)[:, None]
                # The child range: the row's entries below the code, then those up to it (a row is
                # sorted, and its entries past the range are pushed to the end).
                bounds = torch.searchsorted(values.masked_fill_(~valid, torch.iinfo(values.dtype).max),
                                            torch.cat([wanted, wanted + 1], 1))
                out.index_copy_(0, light, torch.cat([start[:, None] + bounds, t["dead"][2:].expand(len(light), 1)], 1))
        if depth >= self.min_tokens:  # (lo, hi) ended: (-lo - 1, hi, -1)
            ends = torch.nonzero(live & (tokens == self._decoder[2])).flatten()
            out.index_copy_(0, ends, states.index_select(0, ends) * t["end_sign"] + t["end_shift"])
        return out

    @property
    def end_token(self) -> int:
        """The decoder's EOS: a span is complete exactly when it takes it (the beam search then
        advances only the beams it keeps)."""
        return self._decoder[2]

    def is_complete(self, states, depth: int = 0):
        """Whether each state is a span ended by EOS."""
        return states[:, 0] < 0

    # --- spans ----------------------------------------------------------------------------
    def walk(self, sequences):
        """The states of decoder token sequences ([B, L], -1 after their end), as the search reaches them."""
        import torch

        sequences = torch.as_tensor(sequences, dtype=torch.int64)
        states = self.root_states(sequences.shape[0], sequences.device)
        for depth in range(sequences.shape[1]):
            step = self.advance(states, sequences[:, depth].clamp(min=0), depth)
            states = torch.where((sequences[:, depth] >= 0)[:, None], step, states)
        return states

    def document_codes(self, doc: int) -> np.ndarray:
        """The codes of document `doc`."""
        end = self.doc_starts[doc + 1] - 1 if doc + 1 < self.n_docs else self.n - 1
        return self.text[self.doc_starts[doc]:end].astype(np.int64) - 1

    def corpus_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """Every token's code and document, in corpus order."""
        body = self.text[: self.n] > 0
        return self.text[: self.n][body].astype(np.int64) - 1, self._documents_at(np.flatnonzero(body))

    def documents_in(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """The documents (indices, ascending) holding the occurrences `[lo, hi)` of a span, and
        how many occurrences each holds."""
        return np.unique(self._documents_at(self.suffix_array[lo:hi].astype(np.int64)), return_counts=True)

    def _documents_at(self, positions: np.ndarray) -> np.ndarray:
        """The document each text position belongs to."""
        return np.searchsorted(self.doc_starts, positions, "right") - 1


def _edge_children(node_key, node_edge_start, edge_key, edge_lo, vocab_size: int, n: int):
    """Each edge's code plus one and its child's node (-1 for a range read whole): the node at the
    next depth that starts where the edge's range does."""
    code = edge_key % (vocab_size + 1)
    if not len(edge_key):
        return code, np.zeros(0, dtype=edge_lo.dtype)
    parent = np.searchsorted(node_edge_start, np.arange(len(edge_key)), "right") - 1
    keys = (node_key[parent] // (n + 1) + 1) * (n + 1) + edge_lo.astype(np.int64)
    index = np.minimum(np.searchsorted(node_key, keys), len(node_key) - 1)
    return code, np.where(node_key[index] == keys, index, -1).astype(edge_lo.dtype)


def _nodes(text, suffix_array, lcp, vocab_size: int, max_tokens: int, window: int) -> dict:
    """The ranges of more than `window` suffixes whose span a search can reach (no separator in it),
    at depths 0 to `max_tokens - 1`, with their children: one pass over the suffix array a depth."""
    n = len(suffix_array)
    lows, highs = np.zeros(1, dtype=np.int64), np.array([n], dtype=np.int64)
    node_keys, edge_keys, edge_lo, edge_hi, edge_counts = [], [], [], [], []
    n_nodes = 0
    for depth in range(max_tokens):
        if not len(lows):
            break
        node_keys.append(depth * (n + 1) + lows)
        # Children of every range at this depth start where the common prefix is shorter than depth + 1.
        starts = np.flatnonzero(lcp <= depth)
        group = np.searchsorted(lows, starts, "right") - 1
        inside = (group >= 0) & (starts < highs[np.maximum(group, 0)])
        starts, group = starts[inside], group[inside]
        ends = np.append(starts[1:], 0)
        last = np.append(group[1:] != group[:-1], True)
        ends[last] = highs[group[last]]
        codes = text[suffix_array[starts].astype(np.int64) + depth].astype(np.int64)
        keep = codes > 0  # no span goes on past a document's end
        starts, ends, group, codes = starts[keep], ends[keep], group[keep], codes[keep]
        edge_keys.append((n_nodes + group) * (vocab_size + 1) + codes)
        edge_lo.append(starts)
        edge_hi.append(ends)
        edge_counts.append(np.bincount(group, minlength=len(lows)))
        n_nodes += len(lows)
        large = (ends - starts) > window
        lows, highs = starts[large], ends[large]
    counts = np.concatenate(edge_counts) if edge_counts else np.zeros(0, dtype=np.int64)
    dtype = suffix_array.dtype
    return {
        "node_key": np.concatenate(node_keys) if node_keys else np.zeros(0, dtype=np.int64),
        "node_edge_start": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "edge_key": np.concatenate(edge_keys) if edge_keys else np.zeros(0, dtype=np.int64),
        "edge_lo": np.concatenate(edge_lo).astype(dtype) if edge_lo else np.zeros(0, dtype=dtype),
        "edge_hi": np.concatenate(edge_hi).astype(dtype) if edge_hi else np.zeros(0, dtype=dtype),
    }
