"""`DocidModel`: a seq2seq model whose decoder writes docids, with its input tokenizer.

Every architecture keeps the same contract: `docid_token_ids[i]` is the decoder token id of the
table's vocabulary entry i, each docid is its tokens followed by the decoder's EOS, and the model
directory holds everything a fresh process needs (weights as safetensors, tokenizer, docid table).

- `minilm-warm`: all-MiniLM-L6-v2 (offline) as encoder, a small BERT-style decoder with
  cross-attention over a vocabulary of only the docid tokens (plus pad, EOS, start). Only the top
  `trainable_encoder_layers` of the encoder train, at `encoder_lr_scale` times the learning rate.
- `t5-scratch`: T5 from random weights with a BPE tokenizer trained on the collection; the
  docid tokens are appended to the vocabulary (shared embeddings, as the paper extends T5's).
- `pretrained`: any Hugging Face seq2seq checkpoint (`t5-base`, a local path). Text docid tokens
  the model's tokenizer has keep its ids (the paper's TU docids are T5 subwords); the others, and
  every token of a new-token scheme (PQ codes, `<dup_k>`, atomic), get embedding rows appended
  after the model's (paper: +M*K rows). The tokenizer itself is never extended: an added token
  would change how queries and documents are cut into subwords.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ddro.docids.table import PAD, DocidTable
from ddro.errors import DdroError
from ddro.precision import DEFAULT_PRECISION, check_precision

MODEL_FILE = "ddro_model.json"
# Weight types a model can be loaded in for search. The beam scores stay fp32 whatever the weights
# (`ddro.decoding.beam` takes the log-softmax of fp32 logits), so only the network's arithmetic changes.
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# EncoderDecoderModel warns on every forward with labels about a change made in transformers 4.12;
# ddro builds its labels the current way, so the warning says nothing to ddro's users.
warnings.filterwarnings("ignore", message="Version v4.12.0 introduces", category=FutureWarning)


@dataclass
class DocidModel:
    model: torch.nn.Module
    tokenizer: object
    table: DocidTable
    docid_token_ids: np.ndarray
    architecture: str
    eos_token_id: int
    decoder_start_token_id: int
    max_input_tokens: int = 64
    # Share of training queries SFT held out for validation (`collections.base.validation_part`);
    # None: not trained by SFT here, so nothing is known to be held out.
    validation_fraction: float | None = None
    # The query-generation model behind SFT's pseudo-queries (None: extractive spans).
    qg_model: str | None = None
    # Or the pseudo-queries file SFT read (`--pseudo-queries-file`) and its SHA-256, so DDRO reads the same.
    pseudo_queries_file: str | None = None
    pseudo_queries_sha256: str | None = None
    # The train/test split SFT trained with (`Split.record()`), checked by every later step that
    # reads the collection (`collections.base.check_split`); None: not trained here, or saved
    # before models recorded it.
    split: dict | None = None
    # The arithmetic of every pass (`ddro.precision`): what it was trained with, what it searches with.
    precision: str = DEFAULT_PRECISION

    # --- docids as decoder tokens -------------------------------------------------------------
    def docid_sequences(self) -> np.ndarray:
        """Every document's decoder labels: docid tokens then EOS, padded with -1: [n_docs, L]."""
        rows = []
        for codes in self.table.codes:
            tokens = [int(self.docid_token_ids[c]) for c in codes if c != PAD]
            if not tokens or tokens[-1] != self.eos_token_id:
                tokens.append(self.eos_token_id)
            rows.append(tokens)
        out = np.full((len(rows), max(map(len, rows))), -1, dtype=np.int64)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out

    def encode(self, texts: list[str]) -> dict:
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_input_tokens,
                              return_tensors="pt")

    @property
    def decoder_vocab_size(self) -> int:
        return int(self.model.config.decoder.vocab_size if self.architecture == "minilm-warm"
                   else self.model.config.vocab_size)

    # --- files --------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder / "model", safe_serialization=True)
        self.tokenizer.save_pretrained(folder / "tokenizer")
        self.table.save(folder / "docids")
        np.save(folder / "docid_token_ids.npy", self.docid_token_ids)
        meta = {"format": "ddro-model/1", "architecture": self.architecture, "eos_token_id": self.eos_token_id,
                "decoder_start_token_id": self.decoder_start_token_id, "max_input_tokens": self.max_input_tokens,
                "validation_fraction": self.validation_fraction, "qg_model": self.qg_model,
                "pseudo_queries_file": self.pseudo_queries_file, "pseudo_queries_sha256": self.pseudo_queries_sha256,
                "split": self.split, "precision": self.precision,
                # Which parameters the preset froze (e.g. MiniLM's lower layers), so that training a
                # loaded model (`ddro train ddro --model`) updates and clips the same set as `ddro run`.
                "frozen_parameters": [name for name, p in self.model.named_parameters() if not p.requires_grad]}
        (folder / MODEL_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu", dtype: str = "fp32") -> "DocidModel":
        """A saved model on `device`, its weights cast to `dtype` (`fp32`, `bf16` or `fp16`: for search;
        training keeps fp32 weights)."""
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, EncoderDecoderModel

        folder = Path(folder)
        if not (folder / MODEL_FILE).is_file():
            raise DdroError(f"{folder}: not a ddro model folder (no {MODEL_FILE}; train one with `ddro train sft`)")
        meta = json.loads((folder / MODEL_FILE).read_text())
        loader = EncoderDecoderModel if meta["architecture"] == "minilm-warm" else AutoModelForSeq2SeqLM
        if dtype not in DTYPES:
            raise DdroError(f"dtype {dtype!r}: choose from {', '.join(DTYPES)}")
        model = loader.from_pretrained(folder / "model").to(device, dtype=DTYPES[dtype]).eval()
        frozen = set(meta.get("frozen_parameters", ()))
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name not in frozen)
        return cls(model, AutoTokenizer.from_pretrained(folder / "tokenizer"), DocidTable.load(folder / "docids"),
                   np.load(folder / "docid_token_ids.npy"), meta["architecture"], meta["eos_token_id"],
                   meta["decoder_start_token_id"], meta["max_input_tokens"], meta.get("validation_fraction"),
                   meta.get("qg_model"), meta.get("pseudo_queries_file"), meta.get("pseudo_queries_sha256"),
                   meta.get("split"), meta.get("precision", DEFAULT_PRECISION))


def build_docid_model(preset, table: DocidTable, corpus_texts, seed: int = 0) -> DocidModel:
    """A new model for `table`'s docids, following `preset.architecture`, at `preset.precision`."""
    torch.manual_seed(seed)
    if preset.architecture == "minilm-warm":
        docid_model = _minilm_warm(preset, table)
    elif preset.architecture == "t5-scratch":
        docid_model = _t5_scratch(preset, table, corpus_texts)
    elif preset.architecture == "pretrained":
        docid_model = _pretrained(preset, table)
    else:
        raise DdroError(f"unknown architecture {preset.architecture!r}")
    docid_model.precision = check_precision(preset.precision)
    return docid_model


def _table_eos(table: DocidTable) -> str | None:
    return table.options.get("eos_token") if not table.new_tokens else None


def _minilm_warm(preset, table: DocidTable) -> DocidModel:
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertLMHeadModel, EncoderDecoderModel

    from ddro.docids.encoders import minilm_path

    encoder = AutoModel.from_pretrained(minilm_path())
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    # Decoder vocabulary: 0 pad, 1 EOS, 2 start, then the table's tokens (its EOS maps to 1).
    eos = _table_eos(table)
    docid_ids = np.array([1 if tok == eos else 3 + i for i, tok in enumerate(table.vocab)], dtype=np.int64)
    hidden = encoder.config.hidden_size
    decoder = BertLMHeadModel(BertConfig(
        vocab_size=3 + len(table.vocab), hidden_size=hidden, num_hidden_layers=preset.decoder_layers,
        num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden, is_decoder=True,
        add_cross_attention=True, pad_token_id=0, bos_token_id=2, eos_token_id=1,
        max_position_embeddings=int(table.lengths.max()) + 8, tie_word_embeddings=preset.tie_output,
    ))
    model = EncoderDecoderModel(encoder=encoder, decoder=decoder)
    model.config.decoder_start_token_id, model.config.pad_token_id, model.config.eos_token_id = 2, 0, 1
    model.generation_config.decoder_start_token_id = 2
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = 0, 1
    layers = encoder.encoder.layer
    frozen = len(layers) - preset.trainable_encoder_layers
    for module in [encoder.embeddings, *layers[: max(frozen, 0)]]:
        module.requires_grad_(False)
    return DocidModel(model, tokenizer, table, docid_ids, "minilm-warm", 1, 2, preset.max_input_tokens)


def _t5_scratch(preset, table: DocidTable, corpus_texts) -> DocidModel:
    from transformers import T5Config, T5ForConditionalGeneration

    from ddro.models.tokenizer import train_subword_tokenizer

    if not preset.tie_output:
        # transformers 5's T5Config sets tie_word_embeddings back to True (False only turns off the
        # output scaling), so an untied T5 would silently be a tied one.
        raise DdroError(f"--untied-output: the {preset.name} preset's T5 always ties its output head to the "
                        "embeddings in transformers 5; the option applies to the cpu preset's decoder only")
    tokenizer = train_subword_tokenizer(corpus_texts, preset.tokenizer_vocab)
    base = len(tokenizer)
    eos = _table_eos(table)
    docid_ids = np.array([1 if tok == eos else base + i for i, tok in enumerate(table.vocab)], dtype=np.int64)
    config = T5Config(
        vocab_size=base + len(table.vocab), d_model=preset.d_model, d_ff=preset.d_ff, d_kv=preset.d_model // preset.heads,
        num_layers=preset.encoder_layers, num_decoder_layers=preset.decoder_layers, num_heads=preset.heads,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, tie_word_embeddings=preset.tie_output,
    )
    return DocidModel(T5ForConditionalGeneration(config), tokenizer, table, docid_ids, "t5-scratch", 1, 0,
                      preset.max_input_tokens)


def _pretrained(preset, table: DocidTable) -> DocidModel:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    if not preset.tie_output:
        # The checkpoint's output head is part of what it was pretrained with; ddro does not re-head it.
        raise DdroError(f"--untied-output applies to the cpu preset's decoder, not to the pretrained checkpoint "
                        f"{preset.model!r}, which keeps the output head (tied or not) it was trained with")
    try:
        tokenizer = AutoTokenizer.from_pretrained(preset.model)
        model = AutoModelForSeq2SeqLM.from_pretrained(preset.model)
    except (OSError, ValueError) as exc:
        raise DdroError(
            f"--model {preset.model!r} cannot be loaded ({str(exc).splitlines()[0][:160]}); with no network, "
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
    start = model.config.decoder_start_token_id
    return DocidModel(model, tokenizer, table, docid_ids, "pretrained", int(tokenizer.eos_token_id), int(start),
                      preset.max_input_tokens)
