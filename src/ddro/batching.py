"""Batches of queries and docid labels, shared by training (SFT, DDRO) and search.

Queries come as token id lists and are right-padded; a document's labels are its row of
`DocidModel.docid_sequences()` (docid tokens then EOS), padded with -100, which the loss ignores.
"""

from __future__ import annotations

import numpy as np
import torch

from ddro.texts import all_for_tokenizer


class TokenRows:
    """Token id rows (tokenized queries, passages) as one int32 array and its offsets: 4 bytes a
    token, where a list of Python ints costs about 40, so millions of training examples fit.

    `texts` are tokenized `chunk` at a time, so no list of lists of the whole set is ever built."""

    def __init__(self, tokenize, texts, chunk: int = 8192):
        parts, lengths = [], []
        for start in range(0, len(texts), chunk):
            rows = tokenize(list(texts[start:start + chunk]))
            lengths.append(np.fromiter(map(len, rows), dtype=np.int64, count=len(rows)))
            parts.append(np.fromiter((t for row in rows for t in row), dtype=np.int32, count=int(lengths[-1].sum())))
        self.offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths))]) if lengths else np.zeros(1, np.int64)
        self.tokens = np.concatenate(parts) if parts else np.zeros(0, np.int32)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]

    @property
    def nbytes(self) -> int:
        return self.tokens.nbytes + self.offsets.nbytes


def token_rows(docid_model, texts) -> TokenRows:
    """`texts` tokenized for the model's encoder (truncated to its input length)."""
    limit = docid_model.max_input_tokens
    return TokenRows(lambda part: docid_model.tokenizer(all_for_tokenizer(part, limit), truncation=True,
                                                        max_length=limit)["input_ids"], texts)


def pad_input_ids(sequences, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists into `(input_ids, attention_mask)`."""
    width = max(len(seq) for seq in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = torch.as_tensor(seq)
        attention_mask[row, : len(seq)] = 1
    return input_ids, attention_mask


def label_batch(labels: torch.Tensor, docs) -> torch.Tensor:
    """The docid labels of `docs` (rows of `DocidModel.docid_sequences()`), -100 after EOS."""
    picked = labels[list(docs)]
    picked = picked[:, : int((picked >= 0).sum(1).max())].clone()
    picked[picked < 0] = -100
    return picked


class DocidCollator:
    """Pads the items' `input_ids` and looks up the docid labels of their documents.

    `labels` maps an item's document-index field to the batch key of its labels (default: SFT's
    `doc` to `labels`; DDRO's pairs: the chosen and the rejected document); `stacked` maps other
    per-item arrays to the batch key of their stacked tensor (DDRO's reference log-probabilities).
    An item with a `<field>_target` (n-gram docids' spans) takes it as that field's labels.
    """

    def __init__(self, docid_model, labels: dict[str, str] | None = None, stacked: dict[str, str] | None = None):
        self.pad_id = docid_model.tokenizer.pad_token_id
        self.docid_labels = torch.from_numpy(docid_model.docid_sequences())
        self.labels = labels or {"doc": "labels"}
        self.stacked = stacked or {}

    def __call__(self, batch):
        input_ids, attention_mask = pad_input_ids([b["input_ids"] for b in batch], self.pad_id)
        out = {"input_ids": input_ids, "attention_mask": attention_mask}
        for field, key in self.labels.items():
            if f"{field}_target" in batch[0]:  # n-gram docids: the item's own span, not its document's docid
                out[key] = pad_input_ids([b[f"{field}_target"] for b in batch], -100)[0]
            else:
                out[key] = label_batch(self.docid_labels, [b[field] for b in batch])
        for field, key in self.stacked.items():
            out[key] = torch.tensor(np.stack([b[field] for b in batch]))
        return out
