"""`DocidTable`: the docid of every document, the reverse map, and the docid vocabulary.

A docid is a sequence of *docid tokens*. The table keeps them as integer codes into its own
vocabulary (`vocab`, a list of token strings), so that one table serves every model: a model maps
each vocabulary string to its own token id when it loads the table. Two kinds of vocabulary exist:

- new tokens (`new_tokens=True`: pq, rq, hkmeans, atomic), which a model adds to its vocabulary;
- a tokenizer's own tokens (`new_tokens=False`: title, url, terms, naive), EOS-terminated.

On disk a table is a folder of plain files (no pickle):
`table.json` (metadata), `vocab.json` (token strings), `codes.npy` (int32, rows padded with -1),
`docids.tsv` (doc id, docid string, tokens; for people and other tools) and `collisions.tsv`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ddro.errors import DdroError
from ddro.outputs import verify_checksums, write_checksums

PAD = -1

# Collision policies: what happens when several documents get the same docid.
# `suffix` (default) makes every docid unique: each document of a colliding group gets one more
# token, its rank in the group in collection order (new-token schemes: `<dup_k>`; tokenizer
# schemes: the tokens of " k" for all but the first). `share` keeps the shared docid and the
# reverse map lists every document of the group, in collection order.
COLLISION_POLICIES = ("suffix", "share")


def dup_token(rank: int) -> str:
    return f"<dup_{rank}>"


@dataclass
class DocidTable:
    scheme: str
    doc_ids: list[str]
    codes: np.ndarray  # int32 [n_docs, max_len], PAD after the end
    vocab: list[str]
    new_tokens: bool
    options: dict = field(default_factory=dict)
    strings: list[str] | None = None  # the docid as text, for tokenizer schemes
    collision_groups: list[list[int]] = field(default_factory=list)  # raw collisions, doc indices
    collision_policy: str = "suffix"
    _reverse: dict | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        self.codes = np.ascontiguousarray(self.codes, dtype=np.int32)
        if self.codes.ndim != 2 or self.codes.shape[0] != len(self.doc_ids):
            raise ValueError("codes must be [n_docs, max_len]")

    # --- views ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.doc_ids)

    @property
    def lengths(self) -> np.ndarray:
        return (self.codes != PAD).sum(axis=1)

    def docid(self, index: int) -> tuple[int, ...]:
        row = self.codes[index]
        return tuple(int(c) for c in row[row != PAD])

    def docid_tokens(self, index: int) -> list[str]:
        return [self.vocab[c] for c in self.docid(index)]

    def docs_for(self, codes) -> list[str]:
        """Document ids whose docid is `codes` (several under the `share` policy), or []."""
        if self._reverse is None:
            reverse: dict[tuple[int, ...], list[int]] = {}
            for i in range(len(self.doc_ids)):
                reverse.setdefault(self.docid(i), []).append(i)
            self._reverse = reverse
        return [self.doc_ids[i] for i in self._reverse.get(tuple(int(c) for c in codes), [])]

    def unique_docids(self) -> int:
        return len({row.tobytes() for row in self.codes})

    def stats(self) -> dict:
        lengths = self.lengths
        return {
            "documents": len(self.doc_ids),
            "unique_docids": self.unique_docids(),
            "collisions": sum(len(g) - 1 for g in self.collision_groups),
            "collision_groups": len(self.collision_groups),
            "collision_policy": self.collision_policy,
            "docid_length": int(lengths.max()) if len(lengths) else 0,
            "docid_length_min": int(lengths.min()) if len(lengths) else 0,
            "docid_length_mean": round(float(lengths.mean()), 3) if len(lengths) else 0.0,
            "vocab_size": len(self.vocab),
            "new_tokens": self.new_tokens,
        }

    # --- files ----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": "ddro-docid-table/1",
            "scheme": self.scheme,
            "new_tokens": self.new_tokens,
            "collision_policy": self.collision_policy,
            "options": self.options,
            "stats": self.stats(),
        }
        (folder / "table.json").write_text(json.dumps(meta, indent=2) + "\n")
        (folder / "vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False) + "\n")
        np.save(folder / "codes.npy", self.codes)
        with open(folder / "docids.tsv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
            writer.writerow(["doc_id", "docid_string", "tokens"])
            for i, doc_id in enumerate(self.doc_ids):
                string = self.strings[i] if self.strings is not None else ""
                writer.writerow([doc_id, string, " ".join(self.docid_tokens(i))])
        with open(folder / "collisions.tsv", "w", encoding="utf-8") as fh:
            fh.write("group\tdoc_ids\n")
            for g, group in enumerate(self.collision_groups):
                fh.write(f"{g}\t{' '.join(self.doc_ids[i] for i in group)}\n")
        write_checksums(folder)

    @classmethod
    def load(cls, folder: str | Path) -> "DocidTable":
        folder = Path(folder)
        meta_path = folder / "table.json"
        if not meta_path.is_file():
            raise DdroError(f"{meta_path}: not found (is {folder} a docid table written by `ddro docids`?)")
        verify_checksums(folder)
        try:
            meta = json.loads(meta_path.read_text())
            vocab = json.loads((folder / "vocab.json").read_text())
            codes = np.load(folder / "codes.npy", allow_pickle=False)
            doc_ids, strings = [], []
            with open(folder / "docids.tsv", newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh, delimiter="\t")
                next(reader)
                for row in reader:
                    doc_ids.append(row[0])
                    strings.append(row[1])
            index = {d: i for i, d in enumerate(doc_ids)}
            groups = []
            with open(folder / "collisions.tsv", encoding="utf-8") as fh:
                next(fh)
                for line in fh:
                    groups.append([index[d] for d in line.rstrip("\n").split("\t")[1].split(" ")])
        except (OSError, ValueError, KeyError, IndexError, StopIteration) as exc:
            raise DdroError(f"{folder}: unreadable docid table ({type(exc).__name__}: {exc})") from None
        if len(doc_ids) != len(codes):
            raise DdroError(f"{folder}: docids.tsv names {len(doc_ids)} documents but codes.npy has {len(codes)} rows")
        return cls(
            scheme=meta["scheme"], doc_ids=doc_ids, codes=codes, vocab=vocab, new_tokens=meta["new_tokens"],
            options=meta.get("options", {}), strings=strings if not meta["new_tokens"] else None,
            collision_groups=groups, collision_policy=meta.get("collision_policy", "suffix"),
        )


def collision_groups(codes: np.ndarray) -> list[list[int]]:
    """Groups (of size >= 2) of rows with equal docids, each in row order, ordered by first row."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    groups: dict[int, list[int]] = {}
    for row in np.flatnonzero(counts[inverse] > 1):
        groups.setdefault(int(inverse[row]), []).append(int(row))
    return sorted(groups.values(), key=lambda g: g[0])


def pad_rows(rows: list[list[int]]) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), PAD, dtype=np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def resolve_with_dup_tokens(codes: np.ndarray, vocab: list[str], policy: str) -> tuple[np.ndarray, list[str], list[list[int]]]:
    """Apply a collision policy to a new-token scheme's codes.

    Under `suffix`, each document of a colliding group gets `<dup_k>` (k = its rank in the group,
    in collection order) after its last token; documents without a collision keep their docid.
    The `<dup_k>` tokens join the vocabulary. Returns (codes, vocab, raw collision groups).
    """
    if policy not in COLLISION_POLICIES:
        raise DdroError(f"unknown collision policy {policy!r} (choose from {', '.join(COLLISION_POLICIES)})")
    groups = collision_groups(codes)
    if policy == "share" or not groups:
        return codes, vocab, groups
    largest = max(len(g) for g in groups)
    base = len(vocab)
    vocab = vocab + [dup_token(k) for k in range(largest)]
    rows = [list(map(int, row[row != PAD])) for row in codes]
    for group in groups:
        for rank, row in enumerate(group):
            rows[row].append(base + rank)
    return pad_rows(rows), vocab, groups
