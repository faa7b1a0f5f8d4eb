"""Choosing the DDRO phase's weights on held-out training queries.

Two validation signals:

- a retrieval measure (RR@10, the default) of constrained search on the validation queries
  (`search_measure`);
- the held-out pairs' loss (`loss`): the DDRO loss of the validation queries' own pairs (their
  positive against mined negatives, as in training), the reference being the weights the phase
  starts from; cheap, but it can keep falling while retrieval gets worse, hence not the default
  (docs/experiments.md#selection-on-a-bare-corpus).

`ValidationSelection` scores the model before training and every `eval_steps`, keeps the best
weights in memory (and in each checkpoint, with its history) and stops after `patience`
evaluations past the warm-up without improvement.

`constrained_search` is the one way into `ddro.retrieval` from training: validation and DDRO's
model negatives both search through it.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from ddro import distributed
from ddro.batching import label_batch, pad_input_ids
from ddro.precision import autocast
from ddro.scoring import docid_logprobs, query_states
from ddro.texts import all_for_tokenizer
from ddro.training.checkpoints import checkpoint_dir
from ddro.training.ddro_loss import compared_logps, ddro_loss

PAIR_LOSS = "loss"
# What `ValidationSelection` adds to each checkpoint, for a resumed phase to select as the whole one would.
SELECTION_STATE = "selection.json"
SELECTION_WEIGHTS = "selection_best.safetensors"

logger = logging.getLogger(__name__)


class PairLoss:
    """The mean DDRO loss of `pairs` under the current weights; the first call's weights are the reference.

    Each query is encoded once and each of its distinct docids decoded once (a query's pairs share
    its positive), so scoring 8 pairs per query costs about one encoder pass and nine docids. The
    encodings are kept while the encoder's weights stay as they were (the default phase trains
    the decoder alone): then an evaluation is decoder passes only.
    """

    def __init__(self, docid_model, pairs, beta: float, loss_type: str, batch_queries: int = 32):
        self.docid_model, self.beta, self.loss_type, self.batch_queries = docid_model, beta, loss_type, batch_queries
        docs_of: dict[str, dict[int, int]] = defaultdict(dict)
        text_of: dict[str, str] = {}
        for pair in pairs:
            text_of[pair.query_id] = pair.query
            for doc in (pair.chosen, pair.rejected):
                docs_of[pair.query_id].setdefault(doc, len(docs_of[pair.query_id]))
        self.query_ids = list(text_of)
        self.input_ids = docid_model.tokenizer(all_for_tokenizer([text_of[q] for q in self.query_ids],
                                                                 docid_model.max_input_tokens), truncation=True,
                                               max_length=docid_model.max_input_tokens)["input_ids"]
        self.docs = [list(docs_of[q]) for q in self.query_ids]
        offsets = dict(zip(self.query_ids, np.cumsum([0] + [len(d) for d in self.docs[:-1]]).tolist()))
        self.chosen = torch.tensor([offsets[p.query_id] + docs_of[p.query_id][p.chosen] for p in pairs], dtype=torch.long)
        self.rejected = torch.tensor([offsets[p.query_id] + docs_of[p.query_id][p.rejected] for p in pairs], dtype=torch.long)
        self.labels = torch.from_numpy(docid_model.docid_sequences())
        # Each distinct docid's token count, flat in query order like `logps()` (ipo averages over it).
        self.tokens = (self.labels[[doc for docs in self.docs for doc in docs]] >= 0).sum(1)
        self.pad_id = docid_model.tokenizer.pad_token_id
        self.reference: torch.Tensor | None = None
        self._encodings: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._encoder_fingerprint: torch.Tensor | None = None

    def encodings(self, model) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """`(query states, attention mask)` per batch of queries, recomputed when the encoder changed."""
        encoder = model.get_encoder()
        device = next(encoder.parameters()).device
        # Kept on the CPU; a model moved to another device since (the Trainer places it) is encoded again there.
        fingerprint = torch.stack([p.detach().float().sum() for p in encoder.parameters()]).cpu()
        if self._encoder_fingerprint is None or not torch.equal(fingerprint, self._encoder_fingerprint) \
                or self._encodings[0][0].device != device:
            self._encodings = []
            for start in range(0, len(self.query_ids), self.batch_queries):
                input_ids, mask = (t.to(device) for t in pad_input_ids(self.input_ids[start:start + self.batch_queries],
                                                                       self.pad_id))
                self._encodings.append((query_states(model, input_ids, mask), mask))
            self._encoder_fingerprint = fingerprint
        return self._encodings

    def logps(self) -> torch.Tensor:
        """log p(docid | query) of every query's distinct docids, flat in query order."""
        model = self.docid_model.model.eval()
        out = []
        with torch.inference_mode(), autocast(self.docid_model.precision, next(model.parameters()).device):
            for batch, (states, mask) in enumerate(self.encodings(model)):
                start = batch * self.batch_queries
                stop = start + len(states)
                counts = torch.tensor([len(d) for d in self.docs[start:stop]], device=states.device)
                docs = [doc for query_docs in self.docs[start:stop] for doc in query_docs]
                rows = torch.arange(len(counts), device=states.device).repeat_interleave(counts)
                out.append(docid_logprobs(model, label_batch(self.labels, docs).to(states.device), states, mask,
                                          rows).float())
        return torch.cat(out).cpu()

    def __call__(self) -> float:
        logps = compared_logps(self.logps(), self.tokens, self.loss_type)
        if self.reference is None:
            self.reference = logps
        ref = self.reference
        losses, _, _ = ddro_loss(logps[self.chosen], logps[self.rejected], ref[self.chosen], ref[self.rejected],
                                 self.beta, self.loss_type)
        return float(losses.mean())


class ValidationSelection(TrainerCallback):
    """A validation score every `eval_steps`, early stopping, and the best weights kept in memory.

    Evaluations during the learning-rate warm-up do not use up patience: a run is not judged
    before it reaches its learning rate (validation may dip in the warm-up before it rises)."""

    def __init__(self, evaluate, eval_steps: int, patience: int, model, measure: str = "RR@10",
                 lower_is_better: bool = False):
        self.evaluate, self.eval_steps, self.patience, self.measure = evaluate, eval_steps, patience, measure
        self.sign = -1.0 if lower_is_better else 1.0
        self.history: list[tuple[int, float]] = []
        self.best = self._score()
        self.best_step = 0
        self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.history.append((0, self.best))
        self.bad = 0
        self.warmup_steps = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.warmup_steps = args.get_warmup_steps(state.max_steps)

    def _score(self) -> float:
        """The score every process acts on alike: rank 0's (its weights are every rank's under DDP)."""
        return distributed.broadcast(self.evaluate())

    def _check(self, state, control, model):
        score = self._score()
        model.train()
        self.history.append((state.global_step, score))
        logger.info(f"validation {self.measure} {score:.4f} at step {state.global_step} "
                    f"(best {self.best:.4f} at {self.best_step})")
        if self.sign * (score - self.best) > 1e-9:
            self.best, self.best_step, self.bad = score, state.global_step, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif state.global_step >= self.warmup_steps:
            self.bad += 1
            if self.bad >= self.patience:
                control.should_training_stop = True

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.eval_steps == 0 or state.global_step >= state.max_steps:
            self._check(state, control, model)
        if control.should_save and distributed.is_main():
            # Into the folder the Trainer saves this step's checkpoint in, before its trainer_state.json
            # (written last), so that a complete checkpoint always holds the selection's state.
            self.save(checkpoint_dir(args, state))
        return control

    def save(self, folder: Path) -> None:
        """The selection's state (`SELECTION_STATE`) and best weights (`SELECTION_WEIGHTS`) in `folder`."""
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.best_state.items()}, folder / SELECTION_WEIGHTS)
        (folder / SELECTION_STATE).write_text(json.dumps({"history": self.history, "best": self.best,
                                                          "best_step": self.best_step, "bad": self.bad}) + "\n")

    def restore(self, folder: Path) -> None:
        """Continue from the state `save` left in a checkpoint folder."""
        from safetensors.torch import load_file

        saved = json.loads((folder / SELECTION_STATE).read_text())
        self.history = [tuple(entry) for entry in saved["history"]]
        self.best, self.best_step, self.bad = saved["best"], saved["best_step"], saved["bad"]
        self.best_state = load_file(folder / SELECTION_WEIGHTS)


def constrained_search(docid_model):
    """The model's trie-constrained search, `search(queries, k, num_beams, progress) -> run`
    (`GenerativeRetriever.search`), built once for a phase."""
    from ddro.retrieval import GenerativeRetriever

    return GenerativeRetriever(docid_model).search


def search_measure(search, docid_model, validation, positives, measure: str, beams: int):
    """`measure` of constrained search (top `beams`) on the validation queries, as a function of no arguments.

    Relevance is binary here: each validation query's positives (relevance > 0, as
    `training_queries` gives them) count 1, so a graded measure such as nDCG@10 does not see the
    collection's grades."""
    from ddro.evaluation import evaluate

    table = docid_model.table
    qrels = {q.query_id: {table.doc_ids[d]: 1 for d in positives[q.query_id]} for q in validation}

    from ddro.retrieval import search_in_shards

    def score() -> float:
        docid_model.model.eval()
        run = search_in_shards(search, validation, k=beams, num_beams=beams, progress=False)
        return evaluate(run, qrels, [q.query_id for q in validation], [measure])["aggregate"][measure]

    return score
