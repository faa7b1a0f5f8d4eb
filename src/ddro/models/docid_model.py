"""`DocidModel`: a seq2seq model whose decoder writes docids, with its input tokenizer.

Whatever its architecture (`ddro.models.architectures`), `docid_token_ids[i]` is the decoder token
id of the table's vocabulary entry i, each docid is its tokens followed by the decoder's EOS, and
the model directory holds everything a fresh process needs (weights as safetensors, tokenizer,
docid table).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ddro.collections.textio import read_json_file
from ddro.docids.table import PAD, DocidTable
from ddro.errors import DdroError
from ddro.outputs import verify_checksums, write_checksums
from ddro.models.architectures import ARCHITECTURES, get_architecture
from ddro.precision import DEFAULT_PRECISION, check_precision
from ddro.texts import all_for_tokenizer

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
        return self.tokenizer(all_for_tokenizer(texts, self.max_input_tokens), padding=True, truncation=True,
                              max_length=self.max_input_tokens, return_tensors="pt")

    @property
    def decoder_vocab_size(self) -> int:
        return get_architecture(self.architecture).decoder_vocab_size(self.model)

    def encoder_lr_scale(self, preset) -> float:
        """The factor on the encoder's learning rate when `preset` trains this model."""
        return get_architecture(self.architecture).encoder_lr_scale(preset.network)

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
        # What loading reads (a `ddro train sft` folder also holds the Trainer's files, not checked).
        write_checksums(folder, ["model", "tokenizer", "docids", "docid_token_ids.npy", MODEL_FILE])

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu", dtype: str = "fp32") -> "DocidModel":
        """A saved model on `device`, its weights cast to `dtype` (`fp32`, `bf16` or `fp16`: for search;
        training keeps fp32 weights)."""
        from transformers import AutoConfig, AutoTokenizer

        folder = Path(folder)
        if not (folder / MODEL_FILE).is_file():
            raise DdroError(f"{folder}: not a ddro model folder (no {MODEL_FILE}; train one with `ddro train sft`)")
        if dtype not in DTYPES:
            raise DdroError(f"dtype {dtype!r}: choose from {', '.join(DTYPES)}")
        verify_checksums(folder)
        meta = read_json_file(folder / MODEL_FILE)
        for key in ("eos_token_id", "decoder_start_token_id", "max_input_tokens"):
            if isinstance(meta.get(key), bool) or not isinstance(meta.get(key), int):
                raise DdroError(f"{folder / MODEL_FILE}: '{key}' must be an integer, found {meta.get(key)!r}")
        if not isinstance(meta.get("architecture"), str) or meta["architecture"] not in ARCHITECTURES:
            raise DdroError(f"{folder / MODEL_FILE}: unknown architecture {meta.get('architecture')!r} "
                            f"(known: {', '.join(ARCHITECTURES)})")
        table = DocidTable.load(folder / "docids")
        architecture = get_architecture(meta["architecture"])
        try:
            # Every part is checked before the weights load (the slow part, with a progress bar).
            config = AutoConfig.from_pretrained(folder / "model")
            token_ids = np.load(folder / "docid_token_ids.npy", allow_pickle=False)
            _check_token_ids(folder / "docid_token_ids.npy", token_ids, len(table.vocab),
                             architecture.decoder_vocab_size_of(config))
            tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
            model = architecture.model_class().from_pretrained(folder / "model").to(device, dtype=DTYPES[dtype]).eval()
        except DdroError:
            raise
        except Exception as exc:  # a damaged folder written before ddro kept checksums: one line, not a traceback
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise DdroError(f"{folder}: unreadable model folder ({type(exc).__name__}: {first})") from None
        frozen = set(meta.get("frozen_parameters", ()))
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name not in frozen)
        return cls(model, tokenizer, table,
                   token_ids, meta["architecture"], meta["eos_token_id"],
                   meta["decoder_start_token_id"], meta["max_input_tokens"], meta.get("validation_fraction"),
                   meta.get("qg_model"), meta.get("pseudo_queries_file"), meta.get("pseudo_queries_sha256"),
                   meta.get("split"), meta.get("precision", DEFAULT_PRECISION))


def _check_token_ids(path: Path, token_ids: np.ndarray, table_vocab: int, decoder_vocab: int) -> None:
    """The decoder token id of each entry of the table's vocabulary: one per entry, each a token
    the decoder has; otherwise the table is not the one the model was trained on."""
    if token_ids.ndim != 1 or token_ids.dtype.kind not in "iu":
        raise DdroError(f"{path}: expected a list of integer token ids, found {token_ids.dtype} of shape {token_ids.shape}")
    if len(token_ids) != table_vocab:
        raise DdroError(f"{path}: {len(token_ids)} token ids for the {table_vocab} tokens of the docid table "
                        "(docids/ is not the table this model was trained on)")
    outside = (token_ids < 0) | (token_ids >= decoder_vocab)
    if outside.any():
        raise DdroError(f"{path}: token id {int(token_ids[outside][0])} is outside the decoder's vocabulary "
                        f"of {decoder_vocab}")


def build_docid_model(preset, table: DocidTable, corpus_texts, seed: int = 0) -> DocidModel:
    """A new model for `table`'s docids, following `preset.architecture`, at `preset.precision`."""
    architecture = get_architecture(preset.architecture)
    torch.manual_seed(seed)
    built = architecture.build(preset, table, corpus_texts)
    return DocidModel(built.model, built.tokenizer, table, built.docid_token_ids, architecture.name,
                      built.eos_token_id, built.decoder_start_token_id, preset.network.max_input_tokens,
                      precision=check_precision(preset.precision))
