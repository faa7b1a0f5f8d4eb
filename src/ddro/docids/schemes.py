"""The docid schemes, registered by name, and `build_docids`, which turns a collection into a `DocidTable`.

A scheme is one registration (`register_scheme`): its name, its kind, the `DocidConfig` options it
reads, and the function that makes its docids. The kind decides how those become a table:

- `computed`: codes from the documents' embeddings (`make(embeddings, config) -> (codes, vocab)`,
  or `(codes, vocab, codebook)` to keep the centroids a new document's code comes from:
  `ddro.docids.codebooks`), new tokens, collisions resolved with `<dup_k>` tokens;
- `textual`: one string per document (`make(docs, config) -> strings`), cut by a tokenizer into its
  own tokens and ended with its EOS;
- `atomic`: one new token per document (`make(docs, config) -> (codes, vocab)`), unique by construction;
- `spans`: any span of a document, in a tokenizer's own tokens (`make(scheme, collection, config) ->
  DocidTable`, the table with its span index: `ddro.docids.ngram`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import numpy as np

from ddro.docids.table import DocidTable, resolve_with_dup_tokens
from ddro.registry import Registry


class SchemeKind(StrEnum):
    COMPUTED = "computed"
    TEXTUAL = "textual"
    ATOMIC = "atomic"
    SPANS = "spans"


@dataclass(frozen=True)
class DocidScheme:
    name: str
    kind: SchemeKind
    # The `DocidConfig` fields this scheme reads (besides scheme, seed and collisions), recorded in `table.json`.
    options: tuple[str, ...]
    # Makes the docids, called as the kind says (module docstring).
    make: Callable


DOCID_SCHEMES = Registry("docid scheme", option="scheme")
register_scheme = DOCID_SCHEMES.register
get_scheme = DOCID_SCHEMES.lookup


def schemes_of(kind: SchemeKind) -> tuple[str, ...]:
    return tuple(name for name, scheme in DOCID_SCHEMES.items() if scheme.kind == kind)


@dataclass
class DocidConfig:
    """Options of every scheme (each scheme reads its own); all recorded in `table.json`."""

    scheme: str = "pq"
    seed: int = 0
    collisions: str = field(default="suffix", metadata={"help": "suffix (make unique) or share"})
    # computed schemes
    encoder: str = field(default="minilm", metadata={"help": "minilm, lsa[:dim] or hf:<model>"})
    pq_m: int = field(default=24, metadata={"help": "pq sub-spaces (paper: 24)"})
    pq_k: int = field(default=256, metadata={"help": "pq centroids per sub-space (paper: 256)"})
    rq_levels: int = 4
    rq_k: int = 256
    hk_k: int = field(default=10, metadata={"help": "hkmeans clusters per node (DSI: 10)"})
    hk_leaf: int = field(default=100, metadata={"help": "hkmeans largest leaf group (DSI: 100)"})
    # textual schemes
    tokenizer: str = field(default="minilm", metadata={"help": "tokenizer id/path, or minilm"})
    max_tokens: int = 64
    url_rule: str = "paper"
    terms: int = 5
    # n-gram docids
    span_tokens: int = field(default=10, metadata={"help": "ngram: longest span generated (SEAL: 10)"})
    span_doc_tokens: int = field(default=1024, metadata={"help": "ngram: tokens of a document indexed"})
    cache_dir: str | None = None

    def recorded(self) -> dict:
        """The options that shaped this scheme's docids."""
        common = {"scheme": self.scheme, "seed": self.seed, "collisions": self.collisions}
        values = asdict(self)
        return common | {name: values[name] for name in get_scheme(self.scheme).options}


def build_docids(collection, config: DocidConfig) -> DocidTable:
    scheme = get_scheme(config.scheme)
    return _TABLE_BUILDERS[scheme.kind](scheme, collection, config)


def _textual_table(scheme: DocidScheme, collection, config: DocidConfig) -> DocidTable:
    from ddro.docids import text

    options = config.recorded()
    tokenizer = text.load_tokenizer(config.tokenizer)
    strings = scheme.make(collection.docs, config)
    codes, vocab, strings, groups = text.tokenize_docids(strings, tokenizer, config.max_tokens, config.collisions)
    options["eos_token"] = text.eos_token(tokenizer)
    doc_ids = [d.doc_id for d in collection.docs]
    return DocidTable(scheme.name, doc_ids, codes, vocab, False, options, strings, groups, config.collisions)


def _computed_table(scheme: DocidScheme, collection, config: DocidConfig) -> DocidTable:
    from ddro.docids import encoders

    options = config.recorded()
    encoder = encoders.get_encoder(config.encoder, config.seed)
    embeddings = encoders.embed_documents(encoders.document_texts(collection), encoder,
                                          encoders.resolve_cache_dir(config.cache_dir))
    codes, vocab, *kept = scheme.make(embeddings, config)
    codes, vocab, groups = resolve_with_dup_tokens(codes, vocab, config.collisions)
    doc_ids = [d.doc_id for d in collection.docs]
    return DocidTable(scheme.name, doc_ids, codes, vocab, True, options, None, groups, config.collisions,
                      codebook=kept[0] if kept else None)


def _atomic_table(scheme: DocidScheme, collection, config: DocidConfig) -> DocidTable:
    codes, vocab = scheme.make(collection.docs, config)
    doc_ids = [d.doc_id for d in collection.docs]
    return DocidTable(scheme.name, doc_ids, codes, vocab, True, config.recorded(), None, [], config.collisions)


def _spans_table(scheme: DocidScheme, collection, config: DocidConfig) -> DocidTable:
    return scheme.make(scheme, collection, config)


_TABLE_BUILDERS = {SchemeKind.COMPUTED: _computed_table, SchemeKind.TEXTUAL: _textual_table,
                   SchemeKind.ATOMIC: _atomic_table, SchemeKind.SPANS: _spans_table}


# --- the built-in schemes (their modules load when a table is built, keeping `import ddro` light) ---

def _pq(embeddings, config: DocidConfig):
    from ddro.docids.pq import pq_codes

    return pq_codes(embeddings, config.pq_m, config.pq_k, config.seed)


def _rq(embeddings, config: DocidConfig):
    from ddro.docids.rq import rq_codes

    return rq_codes(embeddings, config.rq_levels, config.rq_k, config.seed)


def _hkmeans(embeddings, config: DocidConfig):
    from ddro.docids.hkmeans import hkmeans_codes

    return hkmeans_codes(embeddings, config.hk_k, config.hk_leaf, config.seed)


def _titles(docs, config: DocidConfig) -> list[str]:
    from ddro.docids.text import title_string

    return [title_string(d) for d in docs]


def _urls(docs, config: DocidConfig) -> list[str]:
    from ddro.docids.text import url_string

    return [url_string(d, config.url_rule) for d in docs]


def _terms(docs, config: DocidConfig) -> list[str]:
    from ddro.docids.text import terms_strings

    return terms_strings(docs, config.terms)


def _positions(docs, config: DocidConfig) -> list[str]:
    return [str(i) for i in range(len(docs))]


def _one_token_each(docs, config: DocidConfig):
    return np.arange(len(docs), dtype=np.int32)[:, None], [f"<doc_{i}>" for i in range(len(docs))]


def _ngrams(scheme, collection, config: DocidConfig) -> DocidTable:
    from ddro.docids.ngram import spans_table

    return spans_table(scheme, collection, config)


register_scheme(DocidScheme("pq", SchemeKind.COMPUTED, ("encoder", "pq_m", "pq_k"), _pq))
register_scheme(DocidScheme("rq", SchemeKind.COMPUTED, ("encoder", "rq_levels", "rq_k"), _rq))
register_scheme(DocidScheme("hkmeans", SchemeKind.COMPUTED, ("encoder", "hk_k", "hk_leaf"), _hkmeans))
register_scheme(DocidScheme("title", SchemeKind.TEXTUAL, ("tokenizer", "max_tokens"), _titles))
register_scheme(DocidScheme("url", SchemeKind.TEXTUAL, ("tokenizer", "max_tokens", "url_rule"), _urls))
register_scheme(DocidScheme("terms", SchemeKind.TEXTUAL, ("tokenizer", "max_tokens", "terms"), _terms))
register_scheme(DocidScheme("naive", SchemeKind.TEXTUAL, ("tokenizer", "max_tokens"), _positions))
register_scheme(DocidScheme("atomic", SchemeKind.ATOMIC, (), _one_token_each))
register_scheme(DocidScheme("ngram", SchemeKind.SPANS, ("tokenizer", "span_tokens", "span_doc_tokens"), _ngrams))

# The built-in schemes by kind (one registered later is in `DOCID_SCHEMES` only).
SCHEMES = tuple(DOCID_SCHEMES)
COMPUTED = schemes_of(SchemeKind.COMPUTED)
TEXTUAL = schemes_of(SchemeKind.TEXTUAL)
