"""`DocidTable`: the docid of every document, the reverse map, and the docid vocabulary.

A docid is a sequence of *docid tokens*. The table keeps them as integer codes into its own
vocabulary (`vocab`, a list of token strings), so that one table serves every model: a model maps
each vocabulary string to its own token id when it loads the table. Two kinds of vocabulary exist:

- new tokens (`new_tokens=True`: pq, rq, hkmeans, atomic), which a model adds to its vocabulary;
- a tokenizer's own tokens (`new_tokens=False`: title, url, terms, naive), EOS-terminated.

On disk a table is a folder of plain files (no pickle):
`table.json` (metadata), `vocab.json` (token strings), `codes.npy` (int32, rows padded with -1),
`docids.tsv` (doc id, docid string, tokens; for people and other tools) and `collisions.tsv`;
the `ngram` scheme adds its span index under `spans/` (`ddro.decoding.spans`), and the pq, rq and
hkmeans schemes their centroids under `codebook/` (`ddro.docids.codebooks`), from which documents
added later get their codes (`ddro.docids.growth`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ddro.collections.textio import read_json_file
from ddro.errors import DdroError, at
from ddro.outputs import verify_checksums, write_checksums

PAD = -1

# The columns of `docids.tsv`.
DOCIDS_HEADER = ["doc_id", "docid_string", "tokens"]

# Collision policies: what happens when several documents get the same docid.
# `suffix` (default) makes every docid unique: each document of a colliding group gets one more
# token, its rank in the group in collection order (new-token schemes: `<dup_k>`; tokenizer
# schemes: the tokens of " k" for all but the first). `share` keeps the shared docid and the
# reverse map lists every document of the group, in collection order.
COLLISION_POLICIES = ("suffix", "share")
# The folder of a table's span index (scheme `ngram`).
SPANS_FOLDER = "spans"
# The folder of a computed table's centroids.
CODEBOOK_FOLDER = "codebook"


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
    # The corpus' spans (`ddro.decoding.spans.SpanIndex`) of the `ngram` scheme, whose docids are any span.
    spans: object | None = None
    # The centroids of a computed scheme's codes (`ddro.docids.codebooks.Codebook`), for documents added later.
    codebook: object | None = None
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
            # QUOTE_MINIMAL leaves a lone "\r" unquoted when lines end in "\n", and reading
            # would end the row there: a row holding one is quoted whole.
            quoted = csv.writer(fh, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_ALL)
            writer.writerow(DOCIDS_HEADER)
            for i, doc_id in enumerate(self.doc_ids):
                row = [doc_id, self.strings[i] if self.strings is not None else "", " ".join(self.docid_tokens(i))]
                (quoted if any("\r" in field for field in row) else writer).writerow(row)
        with open(folder / "collisions.tsv", "w", encoding="utf-8") as fh:
            fh.write("group\tdoc_ids\n")
            for g, group in enumerate(self.collision_groups):
                fh.write(f"{g}\t{' '.join(self.doc_ids[i] for i in group)}\n")
        if self.spans is not None:
            self.spans.save(folder / SPANS_FOLDER)
        if self.codebook is not None:
            self.codebook.save(folder / CODEBOOK_FOLDER)
        write_checksums(folder)

    @classmethod
    def load(cls, folder: str | Path) -> "DocidTable":
        """The table saved in `folder`, read exactly: any file that is not as `save` writes it is
        one error naming the file (and line), never a table that is quietly different."""
        folder = Path(folder)
        meta_path = folder / "table.json"
        if not meta_path.is_file():
            raise DdroError(f"{meta_path}: not found (is {folder} a docid table written by `ddro docids`?)")
        verify_checksums(folder)
        meta = read_json_file(meta_path)
        for key, kind in (("scheme", str), ("new_tokens", bool)):
            if not isinstance(meta.get(key), kind):
                raise DdroError(f"{meta_path}: '{key}' must be a {kind.__name__}, found {meta.get(key)!r}")
        vocab = read_json_file(folder / "vocab.json", list)
        if not all(isinstance(token, str) for token in vocab):
            raise DdroError(f"{folder / 'vocab.json'}: expected a list of token strings")
        codes = _read_codes(folder / "codes.npy", len(vocab))
        doc_ids, strings = _read_docids_tsv(folder / "docids.tsv")
        if len(doc_ids) != len(codes):
            raise DdroError(f"{folder}: docids.tsv names {len(doc_ids)} documents but codes.npy has {len(codes)} rows")
        groups = _read_collisions(folder / "collisions.tsv", {d: i for i, d in enumerate(doc_ids)})
        spans = None
        if (folder / SPANS_FOLDER).is_dir():
            from ddro.decoding.spans import SpanIndex

            spans = SpanIndex.load(folder / SPANS_FOLDER)
            if spans.n_docs != len(doc_ids) or spans.vocab_size != len(vocab):
                raise DdroError(f"{folder / SPANS_FOLDER}: an index of {spans.n_docs} documents and {spans.vocab_size} "
                                f"tokens beside a table of {len(doc_ids)} documents and {len(vocab)} tokens")
        codebook = None
        if (folder / CODEBOOK_FOLDER).is_dir():
            from ddro.docids.codebooks import Codebook

            codebook = Codebook.load(folder / CODEBOOK_FOLDER)
        return cls(
            scheme=meta["scheme"], doc_ids=doc_ids, codes=codes, vocab=vocab, new_tokens=meta["new_tokens"],
            options=meta.get("options", {}), strings=strings if not meta["new_tokens"] else None,
            collision_groups=groups, collision_policy=meta.get("collision_policy", "suffix"), spans=spans,
            codebook=codebook,
        )


def _read_codes(path: Path, vocab_size: int) -> np.ndarray:
    """`codes.npy`: an integer [documents, length] array of vocabulary indices, each row a docid
    of one or more codes followed by PAD."""
    try:
        codes = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DdroError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DdroError(f"{path}: not a numpy array file ({str(exc).splitlines()[0][:120]})") from None
    if codes.ndim != 2:
        raise DdroError(f"{path}: expected a [documents, docid length] array, found shape {codes.shape}")
    if codes.dtype.kind not in "iu":
        raise DdroError(f"{path}: expected integer codes, found {codes.dtype}")
    outside = (codes < PAD) | (codes >= vocab_size)
    if outside.any():
        row, col = map(int, np.argwhere(outside)[0])
        raise DdroError(f"{path}: row {row} holds code {codes[row, col]}, outside the vocabulary of {vocab_size} "
                        f"tokens (and {PAD}, the padding)")
    gaps = (codes[:, 1:] != PAD) & (codes[:, :-1] == PAD)
    for problem, rows in (("a code after padding", gaps.any(axis=1)), ("no code (an empty docid)",
                                                                       (codes == PAD).all(axis=1))):
        if rows.any():
            raise DdroError(f"{path}: row {int(np.flatnonzero(rows)[0])} holds {problem}")
    return codes


def _read_docids_tsv(path: Path) -> tuple[list[str], list[str]]:
    """Document ids and docid strings of `docids.tsv` (its header, then `doc_id, docid string,
    tokens` a row, quoted as the csv module quotes)."""
    doc_ids, strings, seen = [], [], {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, delimiter="\t")
            if next(reader, None) != DOCIDS_HEADER:
                raise DdroError(f"{at(path, 1)}: expected the header {chr(9).join(DOCIDS_HEADER)!r}")
            for row in reader:
                where = at(path, reader.line_num)
                if len(row) != len(DOCIDS_HEADER):
                    raise DdroError(f"{where}: expected {len(DOCIDS_HEADER)} tab-separated fields "
                                    f"({', '.join(DOCIDS_HEADER)}), found {len(row)}")
                if not row[0]:
                    raise DdroError(f"{where}: empty document id")
                if row[0] in seen:
                    raise DdroError(f"{where}: document {row[0]!r} is already on line {seen[row[0]]}")
                seen[row[0]] = reader.line_num
                doc_ids.append(row[0])
                strings.append(row[1])
    except FileNotFoundError:
        raise DdroError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DdroError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise DdroError(f"{path}: not a docid list ({exc})") from None
    return doc_ids, strings


def _read_collisions(path: Path, index: dict[str, int]) -> list[list[int]]:
    """`collisions.tsv`: a header, then `group<TAB>doc ids` a line, as document indices."""
    groups = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DdroError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DdroError(f"{path}: not UTF-8 text") from None
    for line_no, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 2:
            raise DdroError(f"{at(path, line_no)}: expected 'group<TAB>doc ids', found {len(fields)} fields")
        unknown = [d for d in fields[1].split(" ") if d not in index]
        if unknown:
            raise DdroError(f"{at(path, line_no)}: document {unknown[0]!r} is not in docids.tsv")
        groups.append([index[d] for d in fields[1].split(" ")])
    return groups


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
