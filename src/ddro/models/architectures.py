"""The model architectures, registered by name: how each builds its network and what differs between them.

Every architecture keeps the same contract: `docid_token_ids[i]` is the decoder token id of the
table's vocabulary entry i, and each docid is its tokens followed by the decoder's EOS.

- `minilm-warm`: all-MiniLM-L6-v2 (offline) as encoder, a small BERT-style decoder with
  cross-attention over a vocabulary of only the docid tokens (plus pad, EOS, start). Only the top
  `trainable_encoder_layers` of the encoder train, at `encoder_lr_scale` times the learning rate.
  N-gram docids, written in MiniLM's own tokens, start their decoder rows from MiniLM's embeddings.
- `t5-scratch`: T5 from random weights with a BPE tokenizer trained on the collection; the
  docid tokens are appended to the vocabulary (shared embeddings, as the paper extends T5's).
- `pretrained`: any Hugging Face seq2seq checkpoint (`t5-base`, a local path). Text docid tokens
  the model's tokenizer has keep its ids (the paper's TU docids are T5 subwords); the others, and
  every token of a new-token scheme (PQ codes, `<dup_k>`, atomic), get embedding rows appended
  after the model's (paper: +M*K rows). The tokenizer itself is never extended: an added token
  would change how queries and documents are cut into subwords.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ddro.docids.table import DocidTable
from ddro.errors import DdroError
from ddro.registry import Registry


class BuiltModel(NamedTuple):
    """What an architecture builds for a docid table; `DocidModel` wraps it."""

    model: object
    tokenizer: object
    docid_token_ids: np.ndarray
    eos_token_id: int
    decoder_start_token_id: int


@dataclass(frozen=True)
class Architecture:
    name: str
    # (preset, table, corpus texts) -> BuiltModel; the preset's `network` part holds the sizes.
    build: Callable[..., BuiltModel]
    # Saved as a transformers `EncoderDecoderModel` (encoder and decoder configs apart), else as one seq2seq model.
    encoder_decoder: bool = False
    # Whether the preset's `encoder_lr_scale` applies: a pretrained encoder under a new decoder trains slower.
    scales_encoder_lr: bool = False
    # Whether text docids are written in the checkpoint's own tokenizer unless the preset names one.
    docids_in_own_tokenizer: bool = False

    def model_class(self):
        """The transformers class a saved model of this architecture loads with."""
        from transformers import AutoModelForSeq2SeqLM, EncoderDecoderModel

        return EncoderDecoderModel if self.encoder_decoder else AutoModelForSeq2SeqLM

    def decoder_vocab_size(self, model) -> int:
        return self.decoder_vocab_size_of(model.config)

    def decoder_vocab_size_of(self, config) -> int:
        """The decoder's vocabulary size from a model's config alone (before its weights load)."""
        return int(config.decoder.vocab_size if self.encoder_decoder else config.vocab_size)

    def encoder_lr_scale(self, network) -> float:
        """The factor on the encoder's learning rate under the preset's `network` settings."""
        return network.encoder_lr_scale if self.scales_encoder_lr else 1.0

    def docid_tokenizer(self, network) -> str | None:
        """The tokenizer text docids default to under this architecture (None: `DocidConfig`'s)."""
        return network.model if self.docids_in_own_tokenizer else None


ARCHITECTURES = Registry("architecture")
register_architecture = ARCHITECTURES.register
get_architecture = ARCHITECTURES.lookup


def _table_eos(table: DocidTable) -> str | None:
    return table.options.get("eos_token") if not table.new_tokens else None


def _minilm_warm(preset, table: DocidTable, corpus_texts) -> BuiltModel:
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertLMHeadModel, EncoderDecoderModel

    from ddro.docids.encoders import minilm_path

    settings = preset.network
    encoder = AutoModel.from_pretrained(minilm_path())
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    # Decoder vocabulary: 0 pad, 1 EOS, 2 start, then the table's tokens (its EOS maps to 1).
    eos = _table_eos(table)
    docid_ids = np.array([1 if tok == eos else 3 + i for i, tok in enumerate(table.vocab)], dtype=np.int64)
    hidden = encoder.config.hidden_size
    decoder = BertLMHeadModel(BertConfig(
        vocab_size=3 + len(table.vocab), hidden_size=hidden, num_hidden_layers=settings.decoder_layers,
        num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden, is_decoder=True,
        add_cross_attention=True, pad_token_id=0, bos_token_id=2, eos_token_id=1,
        max_position_embeddings=int(table.lengths.max()) + 8, tie_word_embeddings=settings.tie_output,
    ))
    if table.spans is not None:
        _start_from_encoder_rows(decoder, encoder, tokenizer, table.vocab, docid_ids)
    model = EncoderDecoderModel(encoder=encoder, decoder=decoder)
    model.config.decoder_start_token_id, model.config.pad_token_id, model.config.eos_token_id = 2, 0, 1
    model.generation_config.decoder_start_token_id = 2
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = 0, 1
    layers = encoder.encoder.layer
    frozen = len(layers) - settings.trainable_encoder_layers
    for module in [encoder.embeddings, *layers[: max(frozen, 0)]]:
        module.requires_grad_(False)
    return BuiltModel(model, tokenizer, docid_ids, 1, 2)


def _start_from_encoder_rows(decoder, encoder, tokenizer, tokens: list[str], docid_ids) -> None:
    """N-gram docids are spans of the collection in the encoder's own tokens: each token's decoder row
    (the tied output row too) starts as the encoder's embedding of that token, so that the decoder
    can score the tokens it reads in the query from the start (SEAL's BART shares them likewise)."""
    import torch

    own = tokenizer.convert_tokens_to_ids(tokens)
    source = encoder.get_input_embeddings().weight
    with torch.no_grad():
        decoder.get_input_embeddings().weight[torch.as_tensor(docid_ids)] = source[torch.as_tensor(own)]


def _t5_scratch(preset, table: DocidTable, corpus_texts) -> BuiltModel:
    from transformers import T5Config, T5ForConditionalGeneration

    from ddro.models.tokenizer import train_subword_tokenizer

    settings = preset.network
    if not settings.tie_output:
        # transformers 5's T5Config sets tie_word_embeddings back to True (False only turns off the
        # output scaling), so an untied T5 would silently be a tied one.
        raise DdroError(f"--untied-output: the {preset.name} preset's T5 always ties its output head to the "
                        "embeddings in transformers 5; the option applies to the cpu preset's decoder only")
    tokenizer = train_subword_tokenizer(corpus_texts, settings.tokenizer_vocab)
    base = len(tokenizer)
    eos = _table_eos(table)
    docid_ids = np.array([1 if tok == eos else base + i for i, tok in enumerate(table.vocab)], dtype=np.int64)
    config = T5Config(
        vocab_size=base + len(table.vocab), d_model=settings.d_model, d_ff=settings.d_ff,
        d_kv=settings.d_model // settings.heads, num_layers=settings.encoder_layers,
        num_decoder_layers=settings.decoder_layers, num_heads=settings.heads,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, tie_word_embeddings=settings.tie_output,
    )
    return BuiltModel(T5ForConditionalGeneration(config), tokenizer, docid_ids, 1, 0)


def _pretrained(preset, table: DocidTable, corpus_texts) -> BuiltModel:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    checkpoint = preset.network.model
    if not preset.network.tie_output:
        # The checkpoint's output head is part of what it was pretrained with; ddro does not re-head it.
        raise DdroError(f"--untied-output applies to the cpu preset's decoder, not to the pretrained checkpoint "
                        f"{checkpoint!r}, which keeps the output head (tied or not) it was trained with")
    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        model = AutoModelForSeq2SeqLM.from_pretrained(checkpoint)
    except (OSError, ValueError) as exc:
        raise DdroError(
            f"--model {checkpoint!r} cannot be loaded ({str(exc).splitlines()[0][:160]}); with no network, "
            "give a local folder holding the checkpoint"
        ) from None
    eos = _table_eos(table)
    own = {} if table.new_tokens else tokenizer.get_vocab()
    base = model.get_input_embeddings().num_embeddings
    appended = [tok for tok in table.vocab if tok != eos and tok not in own]
    new_ids = {tok: base + i for i, tok in enumerate(appended)}
    if appended:
        model.resize_token_embeddings(base + len(appended))
    docid_ids = np.array([tokenizer.eos_token_id if tok == eos else own[tok] if tok in own else new_ids[tok]
                          for tok in table.vocab], dtype=np.int64)
    return BuiltModel(model, tokenizer, docid_ids, int(tokenizer.eos_token_id), int(model.config.decoder_start_token_id))


def grow_docid_rows(docid_model, tokens: list[str], spans: bool = False) -> np.ndarray:
    """Give a trained model decoder rows for docid tokens its table did not have (documents added
    later: `ddro.corpus_change`), appended after the decoder's rows, which keep their ids and
    weights; returns the tokens' decoder ids. A text token the pretrained checkpoint's own
    tokenizer has keeps that id. The new rows start as transformers' resize makes them (the mean
    of the others), n-gram tokens under minilm-warm from the encoder's embedding of the token, as
    the build starts them."""
    model = docid_model.model
    architecture = get_architecture(docid_model.architecture)
    own = docid_model.tokenizer.get_vocab() if architecture.docids_in_own_tokenizer and not docid_model.table.new_tokens else {}
    appended = [token for token in tokens if token not in own]
    decoder = model.decoder if architecture.encoder_decoder else model
    base = architecture.decoder_vocab_size(model)
    new_ids = {token: base + i for i, token in enumerate(appended)}
    if appended:
        decoder.resize_token_embeddings(base + len(appended))
        if architecture.encoder_decoder:
            model.config.decoder.vocab_size = base + len(appended)
    ids = np.array([own[t] if t in own else new_ids[t] for t in tokens], dtype=np.int64)
    if spans and architecture.encoder_decoder and appended:
        _start_from_encoder_rows(decoder, model.encoder, docid_model.tokenizer, appended,
                                 np.array([new_ids[t] for t in appended], dtype=np.int64))
    return ids


register_architecture(Architecture("minilm-warm", _minilm_warm, encoder_decoder=True, scales_encoder_lr=True))
register_architecture(Architecture("t5-scratch", _t5_scratch))
register_architecture(Architecture("pretrained", _pretrained, docids_in_own_tokenizer=True))
