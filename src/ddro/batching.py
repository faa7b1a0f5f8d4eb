"""Batches of queries and docid labels, shared by training (SFT, DDRO) and search.

Queries come as token id lists and are right-padded; a document's labels are its row of
`DocidModel.docid_sequences()` (docid tokens then EOS), padded with -100, which the loss ignores.
"""

from __future__ import annotations

import numpy as np
import torch


def pad_input_ids(sequences, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists into `(input_ids, attention_mask)`."""
    width = max(len(seq) for seq in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = torch.tensor(seq)
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
            out[key] = label_batch(self.docid_labels, [b[field] for b in batch])
        for field, key in self.stacked.items():
            out[key] = torch.tensor(np.stack([b[field] for b in batch]))
        return out
