"""N-gram docids (SEAL, Bevilacqua et al. 2022): any span of a document identifies it.

The table of an `ngram` scheme holds the corpus itself, as codes into a vocabulary of the
tokenizer's tokens, in a `SpanIndex` (`ddro.decoding.spans`) that the search generates under.
Each document also gets one fixed docid, its *first span*: its first `span_tokens` tokens (its
title, where it has one, then its text) and EOS. That one is what DDRO's pairs score (fixed in
advance, like every other scheme's docid) and what `docids.tsv` lists; training and search use
every span.

Training targets follow SEAL's supervised data: for an example `(text, document)` the target is a
`span_tokens`-token span of the document, its start drawn in proportion to
`exp(overlap / temperature)`, where `overlap` is the idf-weighted number of the text's tokens
among the first three tokens from that start (SEAL matches the query's word trigrams fuzzily
instead), so a query learns the spans it shares words with, and a text sharing none a uniform one.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ddro.docids.table import DocidTable, collision_groups, pad_rows
from ddro.errors import OptionError

# Tokens from a drawn start that are compared with the text (SEAL: word trigrams).
OVERLAP_TOKENS = 3
TEMPERATURE = 1.0


def spans_table(scheme, collection, config) -> DocidTable:
    from ddro.decoding.spans import SpanIndex
    from ddro.docids import text

    if config.span_tokens < 1:
        raise OptionError("span_tokens", f"must be at least 1 (got {config.span_tokens})")
    if config.span_doc_tokens < 1:
        raise OptionError("span_doc_tokens", f"must be at least 1 (got {config.span_doc_tokens})")
    tokenizer = text.load_tokenizer(config.tokenizer)
    eos = text.eos_token(tokenizer)
    eos_id = tokenizer.convert_tokens_to_ids(eos)
    docs = collection.docs
    rows = document_token_ids(docs, tokenizer, config.span_doc_tokens)
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    flat = np.concatenate(rows) if lengths.sum() else np.zeros(0, dtype=np.int64)
    used = np.unique(np.append(flat, eos_id))  # the vocabulary in token id order, EOS included
    codes = np.searchsorted(used, flat)
    vocab = tokenizer.convert_ids_to_tokens(used.tolist())
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    first, strings = first_spans(codes, offsets, vocab, tokenizer, config.span_tokens, eos)
    spans = SpanIndex.build(codes, offsets, len(vocab), config.span_tokens)
    options = config.recorded() | {"eos_token": eos}
    return DocidTable(scheme.name, [d.doc_id for d in docs], first, vocab, False, options, strings,
                      collision_groups(first), "share", spans=spans)


def document_token_ids(docs, tokenizer, doc_tokens: int) -> list[np.ndarray]:
    """Each document's first `doc_tokens` token ids (title then text), its tokenizer's EOS left out:
    an EOS written in a text is no token of a span (it ends spans)."""
    from ddro.docids.text import eos_token
    from ddro.texts import all_for_tokenizer

    eos_id = tokenizer.convert_tokens_to_ids(eos_token(tokenizer))
    rows = []
    for start in tqdm(range(0, len(docs), 1024), desc="tokenizing documents", unit="batch"):
        texts = all_for_tokenizer([d.full_text for d in docs[start:start + 1024]], doc_tokens)
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        rows.extend(np.asarray([t for t in row if t != eos_id][:doc_tokens], dtype=np.int64) for row in ids)
    return rows


def first_spans(codes, offsets, vocab: list[str], tokenizer, span_tokens: int, eos: str) -> tuple[np.ndarray, list[str]]:
    """Each document's fixed docid, its first `span_tokens` codes then EOS, and that span as text."""
    eos_code = vocab.index(eos)
    first = pad_rows([[*codes[offsets[i]:min(offsets[i] + span_tokens, offsets[i + 1])].tolist(), eos_code]
                      for i in range(len(offsets) - 1)])
    strings = [tokenizer.convert_tokens_to_string([vocab[c] for c in row[row >= 0][:-1]]) for row in first]
    return first, strings


def respanned(table: DocidTable, doc_codes: list[np.ndarray], vocab: list[str], doc_ids: list[str],
              tokenizer) -> DocidTable:
    """`table` over other documents (`doc_ids`, with their codes `doc_codes` in `vocab`, which
    extends the table's): first spans, span index and collision groups made again; the vocabulary
    only grows, so that a model's rows for the table's tokens keep their meaning. `tokenizer` is
    the table's (`options["tokenizer"]`), which writes the first spans' strings."""
    from ddro.decoding.spans import SpanIndex

    lengths = np.fromiter(map(len, doc_codes), dtype=np.int64, count=len(doc_codes))
    codes = np.concatenate(doc_codes) if lengths.sum() else np.zeros(0, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    first, strings = first_spans(codes, offsets, vocab, tokenizer, table.spans.max_tokens, table.options["eos_token"])
    spans = SpanIndex.build(codes, offsets, len(vocab), table.spans.max_tokens, table.spans.window)
    return DocidTable(table.scheme, doc_ids, first, vocab, False, table.options, strings, collision_groups(first),
                      "share", spans=spans)


def added_spans(table: DocidTable, new_docs) -> DocidTable:
    """`table` with `new_docs` after its documents: their tokens join the index (a token the
    corpus did not have joins the vocabulary, at its end)."""
    from ddro.docids import text

    tokenizer = text.load_tokenizer(table.options["tokenizer"])
    vocab = list(table.vocab)
    code_of = {token: code for code, token in enumerate(vocab)}
    new_codes = []
    for ids in document_token_ids(new_docs, tokenizer, table.options["span_doc_tokens"]):
        tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
        for token in tokens:
            if token not in code_of:
                code_of[token] = len(vocab)
                vocab.append(token)
        new_codes.append(np.asarray([code_of[t] for t in tokens], dtype=np.int64))
    old_codes = [table.spans.document_codes(i) for i in range(len(table))]
    return respanned(table, old_codes + new_codes, vocab, table.doc_ids + [d.doc_id for d in new_docs], tokenizer)


class SpanTargets:
    """Chooses each training example's target span (module docstring), in decoder token ids."""

    def __init__(self, docid_model, seed: int):
        from ddro.docids.text import load_tokenizer

        table = docid_model.table
        self.spans, self.length, self.seed = table.spans, int(table.options["span_tokens"]), seed
        self.tokenizer = load_tokenizer(table.options["tokenizer"])
        self.vocab_ids = np.asarray(self.tokenizer.convert_tokens_to_ids(table.vocab), dtype=np.int64)
        self.token_ids, self.eos = np.asarray(docid_model.docid_token_ids), docid_model.eos_token_id
        # Inverse document frequency of each code; the last entry (0) is for tokens outside the corpus.
        codes, docs = self.spans.corpus_codes()
        pairs = np.unique(docs * len(self.vocab_ids) + codes)
        frequency = np.bincount(pairs % len(self.vocab_ids), minlength=len(self.vocab_ids))
        self.idf = np.append(np.log((self.spans.n_docs + 1) / (frequency + 1)), 0.0)

    def codes_of(self, token_ids) -> np.ndarray:
        """The codes of tokenizer ids; the tokens the corpus does not hold get the last code + 1."""
        token_ids = np.asarray(token_ids, dtype=np.int64)
        codes = np.searchsorted(self.vocab_ids, token_ids).clip(max=len(self.vocab_ids) - 1)
        return np.where(self.vocab_ids[codes] == token_ids, codes, len(self.vocab_ids))

    def for_examples(self, examples, best: bool = False) -> list[np.ndarray]:
        """One target (span tokens then EOS) per `(text, document)` example: drawn, seeded by the
        example's position, or with `best` the span that shares the most (the first such)."""
        from ddro.texts import all_for_tokenizer

        out = []
        for start in tqdm(range(0, len(examples), 4096), desc="target spans", unit="batch", leave=False):
            part = examples[start:start + 4096]
            ids = self.tokenizer(all_for_tokenizer([text for text, _ in part], 4096), add_special_tokens=False)["input_ids"]
            out.extend(self.target(self.codes_of(row), doc, start + i, best)
                       for i, (row, (_, doc)) in enumerate(zip(ids, part)))
        return out

    def target(self, text_codes: np.ndarray, doc: int, example: int, best: bool = False) -> np.ndarray:
        codes = self.spans.document_codes(doc)
        start = 0
        if len(codes) > self.length:
            overlap = self.overlap(text_codes, codes)
            if best:
                start = int(np.argmax(overlap))
            else:
                p = np.exp((overlap - overlap.max()) / TEMPERATURE)
                start = int(np.random.default_rng([self.seed, example]).choice(len(p), p=p / p.sum()))
        return np.append(self.token_ids[codes[start:start + self.length]], self.eos)

    def overlap(self, text_codes: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """For each start of a whole span of `codes`, the idf-weighted count of the text's codes among
        the `OVERLAP_TOKENS` codes from there (each code counted once)."""
        outside = len(self.vocab_ids)
        shared = np.zeros(outside + 1, dtype=bool)
        shared[text_codes] = True
        shared[outside] = False
        padded = np.append(codes, np.full(OVERLAP_TOKENS - 1, outside))
        windows = np.lib.stride_tricks.sliding_window_view(padded, OVERLAP_TOKENS)[: len(codes) - self.length + 1]
        repeated = np.zeros(windows.shape, dtype=bool)
        for j in range(1, OVERLAP_TOKENS):
            repeated[:, j] = (windows[:, :j] == windows[:, j:j + 1]).any(1)
        return np.where(shared[windows] & ~repeated, self.idf[windows], 0.0).sum(1)
