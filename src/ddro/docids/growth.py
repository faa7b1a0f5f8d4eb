"""A docid table after documents are added or removed, without moving any other document's docid.

`added(table, new_docs, old_docs)` appends the new documents' rows, each made as the scheme makes
one, from what the table kept:

- pq, rq: the codes of the document's embedding under the saved codebook (`ddro.docids.codebooks`),
  by the encoder the table names (an `lsa` encoder is fitted to the corpus it was built on, so it
  cannot place a new document: it is refused);
- hkmeans: the codebook's tree path, then the next leaf position of that group (one past its
  largest: a group may grow past `hk_leaf`, with new `<hk_leaf_p>` tokens);
- title, url, terms, naive: the scheme's string (terms: its tf-idf over the old and new documents;
  naive: the position after the table's documents), tokenized as the build does;
- atomic: a new `<doc_i>` token each;
- ngram: the documents' tokens join the span index, which is built again (a fraction of a second
  for NPL's 11,429 documents).

Collisions follow the table's policy with no existing docid changed. Under `suffix` a new
document whose code some documents already have gets the next number of that group: `<dup_k>`
one past the group's largest (an existing document without a suffix counts as 0, so the first
newcomer to it gets `<dup_1>`), or for text docids the first free " 2", " 3", ...; under `share` it
shares the docid. Tokens the table did not have join its vocabulary at the end, so a model's rows
for the existing ones keep their meaning (`ddro.corpus_change` gives the model the new rows).

`removed(table, doc_ids)` takes rows out (the ngram index is built again without them); the
vocabulary and codebook stay, so documents added later still get codes from the same centroids.
"""

from __future__ import annotations

import re

import numpy as np

from ddro.docids.table import PAD, DocidTable, collision_groups, dup_token, pad_rows
from ddro.errors import DdroError

_DUP = re.compile(r"<dup_(\d+)>")
_LEAF = re.compile(r"<hk_leaf_(\d+)>")


def added(table: DocidTable, new_docs, old_docs=None, cache_dir=None) -> DocidTable:
    """`table` with `new_docs` appended. `old_docs` are the table's documents (`Document`s in its
    order), which the terms and naive schemes read; `cache_dir` caches the new embeddings."""
    from ddro.docids.schemes import SchemeKind, get_scheme

    new_docs = list(new_docs)
    known = set(table.doc_ids)
    repeated = next((d.doc_id for d in new_docs if d.doc_id in known), None)
    if repeated is not None:
        raise DdroError(f"document {repeated!r} is already in the docid table (remove it first to replace it)")
    if len({d.doc_id for d in new_docs}) != len(new_docs):
        raise DdroError("the documents to add name one document id twice")
    if not new_docs:
        return table
    kind = get_scheme(table.scheme).kind
    if kind == SchemeKind.SPANS:
        from ddro.docids.ngram import added_spans

        return added_spans(table, new_docs)
    vocab = _Vocabulary(table.vocab)
    strings, groups = None, table.collision_groups
    if kind == SchemeKind.COMPUTED:
        rows = _computed_rows(table, new_docs, vocab, cache_dir)
    elif kind == SchemeKind.TEXTUAL:
        rows, strings, groups = _text_rows(table, new_docs, old_docs, vocab)
    else:  # atomic: fresh tokens named after the vocabulary's size, which never shrinks
        rows = [[vocab.code(f"<doc_{len(table.vocab) + i}>")] for i in range(len(new_docs))]
    codes = _stacked(table.codes, pad_rows(rows))
    if table.new_tokens:
        groups = _raw_groups(codes, vocab.tokens)
    return DocidTable(table.scheme, table.doc_ids + [d.doc_id for d in new_docs], codes, vocab.tokens, table.new_tokens,
                      table.options, table.strings + strings if strings is not None else None, groups,
                      table.collision_policy, codebook=table.codebook)


def removed(table: DocidTable, doc_ids) -> DocidTable:
    """`table` without the documents `doc_ids` (each must be in it)."""
    doc_ids = list(dict.fromkeys(doc_ids))
    index = {d: i for i, d in enumerate(table.doc_ids)}
    unknown = next((d for d in doc_ids if d not in index), None)
    if unknown is not None:
        raise DdroError(f"document {unknown!r} is not in the docid table")
    gone = {index[d] for d in doc_ids}
    keep = [i for i in range(len(table)) if i not in gone]
    if not keep:
        raise DdroError("removing every document would leave an empty index")
    kept_ids = [table.doc_ids[i] for i in keep]
    if table.spans is not None:
        from ddro.docids.ngram import respanned
        from ddro.docids.text import load_tokenizer

        return respanned(table, [table.spans.document_codes(i) for i in keep], list(table.vocab), kept_ids,
                         load_tokenizer(table.options["tokenizer"]))
    new_index = {old: new for new, old in enumerate(keep)}
    groups = [[new_index[i] for i in group if i in new_index] for group in table.collision_groups]
    codes = table.codes[keep]
    width = int((codes != PAD).sum(axis=1).max())
    return DocidTable(table.scheme, kept_ids, codes[:, :width], list(table.vocab), table.new_tokens, table.options,
                      [table.strings[i] for i in keep] if table.strings is not None else None,
                      [g for g in groups if len(g) > 1], table.collision_policy, codebook=table.codebook)


class _Vocabulary:
    """A table's vocabulary that grows at its end: `code(token)` appends a token it lacks."""

    def __init__(self, tokens: list[str]):
        self.tokens = list(tokens)
        self._codes = {token: code for code, token in enumerate(self.tokens)}

    def code(self, token: str) -> int:
        if token not in self._codes:
            self._codes[token] = len(self.tokens)
            self.tokens.append(token)
        return self._codes[token]


def _stacked(codes: np.ndarray, more: np.ndarray) -> np.ndarray:
    width = max(codes.shape[1], more.shape[1])
    out = np.full((len(codes) + len(more), width), PAD, dtype=np.int32)
    out[: len(codes), : codes.shape[1]] = codes
    out[len(codes):, : more.shape[1]] = more
    return out


# --- computed docids -------------------------------------------------------------------------

def _computed_rows(table: DocidTable, new_docs, vocab: _Vocabulary, cache_dir) -> list[list[int]]:
    from ddro.docids.encoders import document_text, embed_documents, get_encoder, resolve_cache_dir

    if table.codebook is None:
        raise DdroError(f"the {table.scheme} docid table keeps no codebook (built before ddro kept them, or by a "
                        "scheme that returns none), so new documents cannot get codes: build the docids again")
    encoder_spec = table.options.get("encoder", "")
    if encoder_spec.startswith("lsa"):
        raise DdroError(f"the docids' encoder {encoder_spec!r} is fitted to the corpus it was built on and cannot "
                        "place new documents; build the docids with minilm or hf:<model> to add documents later")
    encoder = get_encoder(encoder_spec, table.options.get("seed", 0))
    embeddings = embed_documents([document_text(d) for d in new_docs], encoder, resolve_cache_dir(cache_dir))
    raw = table.codebook.encode(embeddings)
    if table.codebook.kind == "hkmeans":
        return _with_leaf_positions(table, raw, vocab)
    return _numbered_codes(table, [list(map(int, row)) for row in raw], vocab)


def _raw(tokens: list[str]) -> tuple[tuple[str, ...], int]:
    """A new-token docid without its `<dup_k>` suffix, and k (0 when it has none)."""
    match = _DUP.fullmatch(tokens[-1]) if tokens else None
    return (tuple(tokens[:-1]), int(match.group(1))) if match else (tuple(tokens), 0)


def _numbered_codes(table: DocidTable, rows: list[list[int]], vocab: _Vocabulary) -> list[list[int]]:
    """pq and rq codes under the table's collision policy (module docstring)."""
    if table.collision_policy == "share":
        return rows
    largest: dict[tuple[str, ...], int] = {}
    for i in range(len(table)):
        raw, number = _raw(table.docid_tokens(i))
        largest[raw] = max(largest.get(raw, 0), number)
    out = []
    for row in rows:
        raw = tuple(vocab.tokens[c] for c in row)
        if raw in largest:
            largest[raw] += 1
            row = row + [vocab.code(dup_token(largest[raw]))]
        else:
            largest[raw] = 0
        out.append(row)
    return out


def _with_leaf_positions(table: DocidTable, paths: list[list[int]], vocab: _Vocabulary) -> list[list[int]]:
    """hkmeans paths each ended by the next leaf position of its group."""
    last: dict[tuple[int, ...], int] = {}
    for i in range(len(table)):
        codes = table.docid(i)
        position = int(_LEAF.fullmatch(table.vocab[codes[-1]]).group(1))
        last[codes[:-1]] = max(last.get(codes[:-1], -1), position)
    out = []
    for path in paths:
        key = tuple(path)
        last[key] = last.get(key, -1) + 1
        out.append(path + [vocab.code(f"<hk_leaf_{last[key]}>")])
    return out


# --- text docids -----------------------------------------------------------------------------

def _text_rows(table: DocidTable, new_docs, old_docs, vocab: _Vocabulary):
    """The new documents' text docids, their strings, and the collision groups with them: a
    newcomer whose docid some document already has joins that document's group."""
    from ddro.docids import DocidConfig
    from ddro.docids.schemes import get_scheme
    from ddro.docids.text import check_numbering, docid_token_reader, load_tokenizer, numbered

    if old_docs is None or [d.doc_id for d in old_docs] != table.doc_ids:
        raise DdroError(f"adding to a {table.scheme} docid table needs the table's own documents, in its order")
    options = {k: v for k, v in table.options.items() if k in DocidConfig.__dataclass_fields__}
    strings = get_scheme(table.scheme).make(list(old_docs) + new_docs, DocidConfig(**options))[len(old_docs):]
    tokenizer = load_tokenizer(table.options["tokenizer"])
    tokens_of = docid_token_reader(tokenizer)
    eos = table.options["eos_token"]
    body_len = table.options["max_tokens"] - 1
    # Each docid (without its EOS) and the document holding it.
    owner = {tuple(table.vocab[c] for c in table.docid(i))[:-1]: i for i in range(len(table))}
    groups = [list(g) for g in table.collision_groups]
    rows, final = [], []
    for new, string in enumerate(strings, start=len(table)):
        sequence = tokens_of(string)[:body_len]
        if sequence in owner:
            first = owner[sequence]
            group = next((g for g in groups if first in g), None)
            if group is None:
                groups.append(group := [first])
            group.append(new)
            if table.collision_policy == "suffix":
                check_numbering(tokenizer, tokens_of)
                sequence, string = numbered(sequence, string, owner.keys(), tokens_of, body_len)
        owner.setdefault(sequence, new)
        rows.append([vocab.code(token) for token in sequence + (eos,)])
        final.append(string)
    return rows, final, sorted(groups, key=lambda g: g[0])


def _raw_groups(codes: np.ndarray, vocab: list[str]) -> list[list[int]]:
    """The collision groups of new-token docids: rows equal once their `<dup_k>` suffixes go."""
    raw = [_raw([vocab[c] for c in row[row != PAD]])[0] for row in codes]
    ids = {r: i for i, r in enumerate(dict.fromkeys(raw))}
    return collision_groups(np.array([[ids[r]] for r in raw]))
