"""The docid schemes by name, and `build_docids`, which turns a collection into a `DocidTable`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ddro.docids.table import DocidTable, resolve_with_dup_tokens
from ddro.errors import DdroError

COMPUTED = ("pq", "rq", "hkmeans")
TEXTUAL = ("title", "url", "terms", "naive")
SCHEMES = COMPUTED + TEXTUAL + ("atomic",)


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
    cache_dir: str | None = None

    def recorded(self) -> dict:
        """The options that shaped this scheme's docids."""
        common = {"scheme": self.scheme, "seed": self.seed, "collisions": self.collisions}
        own = {
            "pq": ("encoder", "pq_m", "pq_k"), "rq": ("encoder", "rq_levels", "rq_k"),
            "hkmeans": ("encoder", "hk_k", "hk_leaf"), "title": ("tokenizer", "max_tokens"),
            "url": ("tokenizer", "max_tokens", "url_rule"), "terms": ("tokenizer", "max_tokens", "terms"),
            "naive": ("tokenizer", "max_tokens"), "atomic": (),
        }[self.scheme]
        values = asdict(self)
        return common | {name: values[name] for name in own}


def build_docids(collection, config: DocidConfig) -> DocidTable:
    if config.scheme not in SCHEMES:
        raise DdroError(f"--scheme {config.scheme!r}: unknown docid scheme (choose from {', '.join(SCHEMES)})")
    doc_ids = [d.doc_id for d in collection.docs]
    options = config.recorded()
    if config.scheme in TEXTUAL:
        from ddro.docids import text

        tokenizer = text.load_tokenizer(config.tokenizer)
        if config.scheme == "title":
            strings = [text.title_string(d) for d in collection.docs]
        elif config.scheme == "url":
            strings = [text.url_string(d, config.url_rule) for d in collection.docs]
        elif config.scheme == "terms":
            strings = text.terms_strings(collection.docs, config.terms)
        else:
            strings = [str(i) for i in range(len(doc_ids))]
        codes, vocab, strings, groups = text.tokenize_docids(strings, tokenizer, config.max_tokens, config.collisions)
        options["eos_token"] = text.eos_token(tokenizer)
        return DocidTable(config.scheme, doc_ids, codes, vocab, False, options, strings, groups, config.collisions)
    if config.scheme == "atomic":
        codes = np.arange(len(doc_ids), dtype=np.int32)[:, None]
        vocab = [f"<doc_{i}>" for i in range(len(doc_ids))]
        return DocidTable("atomic", doc_ids, codes, vocab, True, options, None, [], config.collisions)
    codes, vocab = _computed_codes(collection, config)
    codes, vocab, groups = resolve_with_dup_tokens(codes, vocab, config.collisions)
    return DocidTable(config.scheme, doc_ids, codes, vocab, True, options, None, groups, config.collisions)


def _computed_codes(collection, config: DocidConfig):
    from ddro.docids import encoders

    encoder = encoders.get_encoder(config.encoder, config.seed)
    embeddings = encoders.embed_documents(encoders.document_texts(collection), encoder,
                                          encoders.resolve_cache_dir(config.cache_dir))
    if config.scheme == "pq":
        from ddro.docids.pq import pq_codes

        return pq_codes(embeddings, config.pq_m, config.pq_k, config.seed)
    if config.scheme == "rq":
        from ddro.docids.rq import rq_codes

        return rq_codes(embeddings, config.rq_levels, config.rq_k, config.seed)
    from ddro.docids.hkmeans import hkmeans_codes

    return hkmeans_codes(embeddings, config.hk_k, config.hk_leaf, config.seed)
