"""The DDRO phase: pairwise training of an SFT model against its frozen self (`ddro train ddro`).

1. Pairs: the training queries minus a validation part (the part SFT held out, by the SHA-1 rule
   of `collections.base.validation_part`; never a test query), each relevant document against `per_query`
   negatives from BM25's top 1,000 in rank bands (`ddro.training.negatives`), plus up to
   `pseudo_queries` pseudo-queries (each one's document is its positive, its negatives drawn
   among the other pseudo-queries' documents: `negative_rankings`). Without training queries,
   pseudo-queries stand in for them, and part of them validates.
2. Reference: the SFT model itself, frozen. By default (`precompute_ref_log_probs`) its
   log-probabilities of every pair's two docids are computed once before training, so only one
   model is in memory; otherwise a frozen copy scores each batch.
3. Training on the Hugging Face Trainer: `ddro_loss` (optionally plus `nll_weight` times the
   chosen docid's next-token loss), dropout off, cosine schedule with warm-up, gradient clipping;
   reward margins and accuracies logged.
4. Selection (`ddro.training.selection`): RR@10 (`validation_measure`) of constrained search on
   the validation queries, or the DDRO loss of their own pairs (`loss`), measured before training
   and every `eval_steps`; training stops after `patience` evaluations past the warm-up without
   improvement, and the best weights (possibly the SFT weights themselves) are kept.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from transformers.trainer_utils import SaveStrategy, SchedulerType

from ddro import distributed
from ddro.batching import DocidCollator, token_rows
from ddro.bm25 import DEFAULT_STEMMER
from ddro.collections.base import PseudoQuery
from ddro.errors import DdroError, OptionError
from ddro.precision import autocast
from ddro.scoring import docid_logprobs, query_states
from ddro.teacher import Teacher, check_teacher
from ddro.training.ddro_loss import compared_logps, ddro_loss
from ddro.training.arguments import DdroTrainingArguments
from ddro.training.checkpoints import latest_checkpoint, remove_checkpoints, train_from, training_callbacks
from ddro.training.negatives import (NegativeConfig, Pair, bm25_rankings, make_pairs, parse_bands,
                                    run_file_rankings)
from ddro.training.selection import PAIR_LOSS, PairLoss, ValidationSelection, constrained_search, search_measure
from ddro.training.sft import DocidTrainer


DEFAULT_VALIDATION_FRACTION = 0.2
# Keeps pseudo-query ids apart from the collection's query ids (ids key positives and rankings).
PSEUDO_PREFIX = "pseudo:"
# Offsets DDRO's pseudo-query sampling from SFT's, so they draw different spans.
_PSEUDO_SALT = 7919

logger = logging.getLogger(__name__)


# The settings `record` keeps, by the names `ddro_summary.json` has always used for them.
_RECORDED = {"beta": "beta", "loss_type": "loss_type", "nll_weight": "nll_weight", "learning_rate": "learning_rate",
             "encoder_lr_scale": "encoder_lr_scale", "dropout": "dropout", "epochs": "num_train_epochs",
             "batch_size": "per_device_train_batch_size", "warmup_ratio": "warmup_steps",
             "max_grad_norm": "max_grad_norm", "precompute_ref_log_probs": "precompute_ref_log_probs",
             "per_query": "per_query", "per_positive": "per_positive", "band_proportions": "band_proportions",
             "bands": "bands", "negatives_run": "negatives_run", "bm25_stemmer": "bm25_stemmer",
             "model_negatives": "model_negatives", "pseudo_queries": "pseudo_queries", "teacher": "teacher",
             "teacher_positives": "teacher_positives",
             "validation_fraction": "validation_fraction", "validation_min_queries": "validation_min_queries",
             "eval_steps": "eval_steps", "patience": "patience", "validation_measure": "validation_measure",
             "validation_beams": "validation_beams", "seed": "seed"}
# Where and how often a run writes, not how it trains.
_UNRECORDED = ("output_dir", "save_strategy", "save_steps", "save_total_limit")
LOSS_TYPES = ("sigmoid", "hinge", "ipo")
# What a pair scores of an n-gram document (`DDROConfig.span_pairs`, `PairDataset`).
SPAN_PAIRS = ("first", "matched")


@dataclass
class DDROConfig(DdroTrainingArguments):
    """The DDRO phase's settings: the Trainer's (`TrainingArguments`) with ddro's defaults, plus the
    pairs, the loss and the selection."""
    beta: float = field(default=0.4, metadata={"help": "strength of the reference constraint (paper: 0.4)"})
    loss_type: str = field(default="sigmoid", metadata={
        "help": "sigmoid (paper), hinge, or ipo (as TRL: on per-token average log-probabilities, not sums)"})
    nll_weight: float = field(default=0.0, metadata={"help": "weight of a next-token loss on the chosen docid"})
    # The paper's rate for TU docids; larger rates make validation collapse once the warm-up ends.
    learning_rate: float = field(default=1e-5, metadata={
        "help": "peak learning rate (paper: 1e-5 / 5e-6)"})
    # The query encoder stays as SFT fitted it; its gradients still count in the clipped norm.
    encoder_lr_scale: float = field(default=0.0, metadata={
        "help": "the learning rate of the encoder's own layers as a fraction of --learning-rate (default 0: "
                "the decoder and the embedding it shares alone)"})
    # Off as in TRL's DPO: the reference log-probabilities are taken without dropout.
    dropout: bool = field(default=False, metadata={"help": "keep the model's dropout on while training"})
    num_train_epochs: float = field(default=3.0, metadata={"aliases": ["--epochs"], "help": "epochs over the pairs"})
    per_device_train_batch_size: int = field(default=16, metadata={
        "aliases": ["--batch-size"], "help": "pairs per batch (per device)"})
    warmup_steps: float = field(default=0.1, metadata={
        "aliases": ["--warmup-ratio"], "help": "warm-up steps, or below 1 the fraction of the steps"})
    lr_scheduler_type: SchedulerType | str = field(default="cosine", metadata={"help": "learning-rate schedule"})
    save_strategy: SaveStrategy | str = field(default="steps", metadata={
        "help": "when the Trainer saves the checkpoint an interrupted phase resumes from (the newest is kept, "
                "with the selection's best weights)"})
    save_steps: float = field(default=100, metadata={
        "help": "steps between two checkpoints, or below 1 the fraction of the phase's steps"})
    precompute_ref_log_probs: bool = field(default=True, metadata={
        "help": "score the pairs with the frozen reference once before training instead of keeping a copy of it"})
    per_query: int = field(default=8, metadata={
        "help": "negatives per query (paper: 16 MS MARCO, 8 NQ); the positives are every document judged "
                "relevant (grade > 0), grades not told apart"})
    per_positive: bool = field(default=False, metadata={
        "help": "draw --per-query negatives for each relevant document of a query, not for the query"})
    band_proportions: str = field(default="1,1,1", metadata={"help": "share of negatives from each band"})
    bands: str = field(default="1-100,101-500,501-1000", metadata={"help": "BM25 rank bands negatives come from"})
    negatives_run: str | None = field(default=None, metadata={"help": "TREC/MS MARCO run file to mine instead of BM25"})
    bm25_stemmer: str = field(default=DEFAULT_STEMMER, metadata={
        "help": "BM25's stemmer, for DDRO's BM25 negatives and `ddro run`'s BM25 row: a PyStemmer algorithm "
                "(english, porter, ...) or none"})
    model_negatives: bool = field(default=False, metadata={
        "help": "mine the SFT model's own constrained-search ranking of the training queries instead of BM25"})
    pseudo_queries: int = field(default=2000, metadata={
        "help": "pseudo-queries (one per document, at most this many) added to the training queries"})
    teacher: str | None = field(default=None, metadata={
        "help": "rank each pseudo-query over the whole collection by a teacher: bm25, dense (the docid "
                "encoder's embeddings) or bm25+dense (reciprocal-rank fusion); its negatives come from the "
                "teacher's rank bands (default: BM25 among the other pseudo-queries' documents)"})
    teacher_positives: int = field(default=1, metadata={
        "help": "with --teacher, a pseudo-query's positives: its own document and the teacher's next best, "
                "this many in all"})
    validation_fraction: float | None = field(default=None, metadata={
        "help": "training queries held out for selection (default: the part SFT held out, else 0.2)"})
    validation_min_queries: int = field(default=0, metadata={
        "help": "held-out pseudo-queries join the held-out training queries up to this many"})
    eval_steps: int = field(default=25, metadata={"help": "training steps between two measurements of the selection"})
    logging_steps: float | None = field(default=None, metadata={
        "help": "steps between the Trainer's logs (default: half of --eval-steps)"})
    patience: int = field(default=3, metadata={
        "help": "measurements past the warm-up without improvement before training stops"})
    validation_measure: str = field(default="RR@10", metadata={
        "help": "what selects the weights: an ir_measures measure over each validation query's top "
                "--validation-beams, on binary relevance (every document judged relevant counts 1), or 'loss' "
                "(the DDRO loss of the validation queries' pairs, lower is better)"})
    validation_beams: int = field(default=20, metadata={"help": "beam width of the validation search"})
    span_pairs: str = field(default="first", metadata={
        "help": "n-gram docids: the span a pair scores of each document, first (its first span) or matched "
                "(its span that shares the most words with the query)"})

    def __post_init__(self):
        from ddro.bm25 import load_stemmer

        if self.logging_steps is None:
            self.logging_steps = max(1, self.eval_steps // 2)
        super().__post_init__()
        if self.loss_type not in LOSS_TYPES:
            raise OptionError("loss_type", f"{self.loss_type!r}: choose from {', '.join(LOSS_TYPES)}")
        for name in ("beta", "num_train_epochs", "learning_rate", "per_device_train_batch_size", "per_query",
                     "eval_steps", "patience", "validation_beams", "teacher_positives"):
            if not getattr(self, name) > 0:
                raise OptionError(name, f"must be positive (got {getattr(self, name)})")
        for name in ("nll_weight", "encoder_lr_scale", "pseudo_queries", "validation_min_queries"):
            if getattr(self, name) < 0:
                raise OptionError(name, f"must not be negative (got {getattr(self, name)})")
        if self.validation_fraction is not None and not 0 <= self.validation_fraction < 1:
            raise OptionError("validation_fraction", f"must be at least 0 and below 1 (got {self.validation_fraction})")
        bands, proportions = self.band_ranges(), self.proportions()
        if len(proportions) != len(bands):
            raise OptionError("band_proportions", f"gives {len(proportions)} numbers for {len(bands)} bands")
        if min(proportions) < 0 or sum(proportions) <= 0:
            raise OptionError("band_proportions", f"{self.band_proportions!r}: expected shares >= 0, not all 0")
        load_stemmer(self.bm25_stemmer)  # an unknown name fails here, before any training
        if self.teacher is not None:
            check_teacher(self.teacher)
        _check_measure(self.validation_measure)
        if self.span_pairs not in SPAN_PAIRS:
            raise OptionError("span_pairs", f"{self.span_pairs!r}: choose from {', '.join(SPAN_PAIRS)}")

    def band_ranges(self) -> tuple:
        """`bands` as `((first, last), ...)`."""
        return parse_bands(self.bands)

    def proportions(self) -> tuple:
        """`band_proportions` as numbers."""
        try:
            return tuple(float(x) for x in self.band_proportions.split(","))
        except ValueError:
            raise OptionError("band_proportions", f"{self.band_proportions!r}: expected numbers like 1,1,1") from None

    def record(self) -> dict:
        """The settings the phase trains with, as `ddro_summary.json` keeps them for `--resume` to
        compare: ddro's own, and any other Trainer setting that differs from its default."""
        values = {name: getattr(self, attribute) for name, attribute in _RECORDED.items()}
        values |= {"bands": self.band_ranges(), "band_proportions": self.proportions()}
        default = DDROConfig(seed=self.seed, eval_steps=self.eval_steps).to_dict()
        own = set(_RECORDED.values()) | set(_UNRECORDED)
        return values | {name: value for name, value in self.to_dict().items()
                         if name not in own and value != default[name]}

    def negatives(self) -> NegativeConfig:
        return NegativeConfig(self.per_query, self.band_ranges(), self.proportions(), self.per_positive, self.seed)


def _check_measure(name: str) -> None:
    import ir_measures

    if name == PAIR_LOSS:
        return
    try:
        ir_measures.parse_measure(name)
    except (NameError, ValueError, SyntaxError):  # what ir_measures raises for names it cannot read
        raise OptionError("validation_measure", f"{name!r}: expected loss or an ir_measures measure "
                          "(e.g. RR@10, nDCG@10)") from None


def training_queries(collection, docid_model, config: DDROConfig, cache_dir=None, documents=None):
    """`(train queries, validation queries, positives)`.

    The split's training queries plus up to `pseudo_queries` pseudo-queries (one per sampled
    document; with hundreds of training queries, pairs from them alone overfit within minutes).
    They come from the source SFT's stage 2 used: the pseudo-queries file recorded on the model
    (one of the document's lines drawn), or the generator (`qg_model` recorded on the model: one query
    sampled per document with a seed of DDRO's own, cached under `cache_dir`); without either they
    are random spans drawn with a seed of their own and never the title or first sentence, which
    SFT's stage 2 already trained on. The validation part is the one SFT held out
    (`validation_fraction` recorded on the model) unless the config names another fraction; it is
    drawn from the real queries when there are any (pseudo-queries fill it up to
    `validation_min_queries`), else from pseudo-queries.

    Graded relevance is binarized: a query's positives are all its documents of relevance > 0
    in the training part's judgments, a grade-3 document no more preferred than a grade-1 one,
    and no pair sets two relevant documents against each other.

    `documents` (indices; documents just added: `ddro add-docs --ddro`) narrows the training
    queries to those judging one of them and the pseudo-queries to theirs; the validation part
    stays every held-out query's, so that selection also watches the other documents.
    """
    from ddro.collections.base import validation_part

    index = {d: i for i, d in enumerate(docid_model.table.doc_ids)}
    qrels = collection.qrels_dict(collection.split.train, "train")
    positives = {qid: [index[d] for d, rel in docs.items() if rel > 0] for qid, docs in qrels.items()}
    queries = collection.queries_of("train")
    if config.pseudo_queries:
        rng = np.random.default_rng(config.seed)
        pool = np.arange(len(collection.docs)) if documents is None else np.asarray(sorted(documents))
        sampled = sorted(pool[rng.permutation(len(pool))[:config.pseudo_queries]].tolist())
        for doc, candidates in zip(sampled, _pseudo_query_candidates(collection, sampled, docid_model,
                                                                     config.seed + _PSEUDO_SALT, cache_dir)):
            if candidates:
                qid = f"{PSEUDO_PREFIX}{collection.docs[doc].doc_id}"
                queries.append(PseudoQuery(qid, candidates[int(rng.integers(len(candidates)))]))
                positives[qid] = [doc]
    fraction = next(f for f in (config.validation_fraction, docid_model.validation_fraction,
                                DEFAULT_VALIDATION_FRACTION) if f is not None)
    # Real queries validate whenever there are any: pseudo-queries are only a stand-in for them.
    real = [q.query_id for q in queries if not isinstance(q, PseudoQuery)]
    held = validation_part(real or [q.query_id for q in queries], fraction)
    shortfall = config.validation_min_queries - len(held)
    if real and shortfall > 0:
        # A handful of held-out queries makes selection noise; held-out pseudo-queries fill the
        # validation part up, as they stand in for all of it on a bare corpus.
        pseudo = [q.query_id for q in queries if isinstance(q, PseudoQuery)]
        rng = np.random.default_rng(config.seed + _PSEUDO_SALT)
        held |= {pseudo[i] for i in rng.permutation(len(pseudo))[:shortfall]}
    train = [q for q in queries if q.query_id not in held]
    if documents is not None:
        focus = set(documents)
        train = [q for q in train if focus.intersection(positives.get(q.query_id, ()))]
    return train, [q for q in queries if q.query_id in held], positives


def _pseudo_query_candidates(collection, docs: list[int], docid_model, seed: int, cache_dir) -> list[list[str]]:
    """For each of `docs`, the pseudo-queries one is drawn from: all of its lines of the model's
    pseudo-queries file, one generated query, or extractive spans."""
    from ddro.training.instances import (extractive_pseudo_queries, generated_pseudo_queries, qg_inputs,
                                         recorded_pseudo_queries)

    if docid_model.pseudo_queries_file:
        from_file = recorded_pseudo_queries(docid_model, collection.docs)
        return [from_file[d] for d in docs]
    if docid_model.qg_model:
        return generated_pseudo_queries(docid_model.qg_model, qg_inputs([collection.docs[d] for d in docs]), 1, seed,
                                        cache_dir)
    return [extractive_pseudo_queries(collection.docs[d], 8, seed, d)[2:] for d in docs]


class PairDataset(torch.utils.data.Dataset):
    """The pairs, their queries tokenized once, and their reference log-probabilities (filled by
    `precompute_reference`). With n-gram docids and `span_pairs="matched"` each pair scores, of each
    document, the span that shares the most words with its query (`SpanTargets.for_examples(best=True)`)."""

    def __init__(self, pairs: list[Pair], docid_model, span_pairs: str = "first"):
        self.pairs = pairs
        self.input_ids = token_rows(docid_model, [p.query for p in pairs])
        self.ref = np.zeros((len(pairs), 2), dtype=np.float32)
        self.targets = {}
        if docid_model.table.spans is not None and span_pairs == "matched":
            from ddro.batching import TokenRows
            from ddro.docids.ngram import SpanTargets

            spans = SpanTargets(docid_model, seed=0)
            for side in ("chosen", "rejected"):
                matched = spans.for_examples([(p.query, getattr(p, side)) for p in pairs], best=True)
                self.targets[side] = TokenRows(lambda part: part, matched)

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        item = {"input_ids": self.input_ids[i], "chosen": self.pairs[i].chosen, "rejected": self.pairs[i].rejected,
                "ref": self.ref[i]}
        for side, rows in self.targets.items():
            item[f"{side}_target"] = rows[i]
        return item


def pair_collator(docid_model) -> DocidCollator:
    """Batches of `PairDataset` items: padded queries, the chosen and rejected docids' labels and
    the reference log-probabilities."""
    return DocidCollator(docid_model, {"chosen": "chosen_labels", "rejected": "rejected_labels"}, {"ref": "ref_logps"})


def pair_logps(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequence log-probabilities of the chosen and rejected docids, encoding each query once."""
    states = query_states(model, batch["input_ids"], batch["attention_mask"])
    chosen, rejected = batch["chosen_labels"], batch["rejected_labels"]
    width = max(chosen.shape[1], rejected.shape[1])
    labels = torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1]), value=-100) for t in (chosen, rejected)])
    rows = torch.arange(len(chosen), device=states.device).repeat(2)
    logps = docid_logprobs(model, labels, states, batch["attention_mask"], rows)
    return logps[: len(chosen)], logps[len(chosen):]


def reference_logps(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """`pair_logps` of the reference, computed as the policy's are: with autograd on (and no
    backward). Without it PyTorch's attention (SDPA) picks another kernel, which under bf16 gives
    other values (up to 0.014 nats apart on a tiny T5), so the policy would start off its reference."""
    with torch.enable_grad():
        chosen, rejected = pair_logps(model, batch)
    return chosen.detach(), rejected.detach()


class DDROTrainer(DocidTrainer):
    """Trainer with the DDRO loss; logs `rewards/chosen`, `rewards/rejected`, `rewards/margins`,
    `rewards/accuracies` averaged over the steps since the last log."""

    def __init__(self, model, args: DDROConfig, *rest, ref_model=None, **kwargs):
        super().__init__(model, args, *rest, encoder_lr_scale=args.encoder_lr_scale, **kwargs)
        self.ref_model = ref_model
        self._stored: dict[str, list[float]] = {}

    def model_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        cfg = self.args
        if not cfg.dropout:
            model.eval()  # after the Trainer's model.train(); gradients flow the same
        chosen, rejected = pair_logps(model, inputs)
        if self.ref_model is not None:
            # The Trainer places the policy on its device; the frozen copy follows it there.
            self.ref_model.to(inputs["input_ids"].device)
            ref_chosen, ref_rejected = reference_logps(self.ref_model, inputs)
        else:
            ref_chosen, ref_rejected = inputs["ref_logps"][:, 0], inputs["ref_logps"][:, 1]
        chosen_tokens = (inputs["chosen_labels"] != -100).sum(1).clamp(min=1)
        rejected_tokens = (inputs["rejected_labels"] != -100).sum(1).clamp(min=1)
        losses, chosen_rewards, rejected_rewards = ddro_loss(
            *(compared_logps(logps, tokens, cfg.loss_type) for logps, tokens in
              ((chosen, chosen_tokens), (rejected, rejected_tokens), (ref_chosen, chosen_tokens),
               (ref_rejected, rejected_tokens))),
            cfg.beta, cfg.loss_type)
        loss = losses.mean()
        if cfg.nll_weight:
            loss = loss + cfg.nll_weight * (-chosen / chosen_tokens).mean()
        margins = chosen_rewards - rejected_rewards
        for name, value in (("rewards/chosen", chosen_rewards.mean()), ("rewards/rejected", rejected_rewards.mean()),
                            ("rewards/margins", margins.mean()), ("rewards/accuracies", (margins > 0).float().mean())):
            self._stored.setdefault(name, []).append(float(value))
        return loss

    def log(self, logs, *args, **kwargs):
        logs = dict(logs) | {name: float(np.mean(values)) for name, values in self._stored.items()}
        self._stored.clear()
        return super().log(logs, *args, **kwargs)


def precompute_reference(docid_model, dataset: PairDataset, batch_size: int = 64) -> None:
    """Fill `dataset.ref` with the frozen model's log-probabilities (done once, before training, at
    the precision the policy then trains at)."""
    from tqdm.auto import tqdm

    collator = pair_collator(docid_model)
    model = docid_model.model.eval()
    device = next(model.parameters()).device

    def scored(part: list[int]) -> list:
        rows = []
        with autocast(docid_model.precision, device):
            for start in tqdm(range(0, len(part), batch_size), desc="reference log-probs", unit="batch",
                              disable=not distributed.is_main()):
                batch = collator([dataset[i] for i in part[start:start + batch_size]])
                chosen, rejected = reference_logps(model, {name: t.to(device) for name, t in batch.items()})
                rows += torch.stack([chosen, rejected], 1).float().cpu().tolist()
        return rows

    # Each process scores its share of the pairs; every process gets them all back.
    dataset.ref[:] = np.asarray(distributed.gather_shards(list(range(len(dataset))), scored),
                                dtype=np.float32).reshape(-1, 2)


def model_rankings(search, queries, depth: int) -> dict[str, list[str]]:
    """The SFT model's own rankings (`constrained_search`, beam = depth): its hardest mistakes."""
    run = search(queries, k=depth, num_beams=depth)
    return {qid: [doc_id for doc_id, _ in ranked] for qid, ranked in run.items()}


def teach_pseudo_queries(collection, docid_model, queries, positives, config: DDROConfig) -> dict[str, list[str]]:
    """With `config.teacher`: the teacher's ranking of each pseudo-query of `queries` over the whole
    collection (to the negatives' depth), and in `positives` (changed in place) each pseudo-query's
    own document followed by the teacher's best others, `teacher_positives` in all. Without a
    teacher: nothing (`{}`)."""
    pseudo = [q for q in queries if isinstance(q, PseudoQuery)]
    if config.teacher is None or not pseudo:
        return {}
    teacher = Teacher.for_docids(config.teacher, collection, docid_model.table, config.bm25_stemmer)
    rankings = teacher.rankings(pseudo, config.negatives().depth)
    index = {doc_id: i for i, doc_id in enumerate(docid_model.table.doc_ids)}
    for query in pseudo:
        own = positives[query.query_id][0]
        others = [index[d] for d in rankings.get(query.query_id, []) if index[d] != own]
        positives[query.query_id] = [own] + others[:config.teacher_positives - 1]
    return rankings


def negative_rankings(collection, search, query_sets, positives, config: DDROConfig,
                      taught: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """The ranking each query's negatives are drawn from (BM25, a run file or the model's own
    `search`), for each list of queries in `query_sets` (training and validation queries are
    ranked together, from one BM25 index or one read of the run file, but each set keeps its own
    pool).

    A pseudo-query's ranking is its teacher's (`taught`, from `teach_pseudo_queries`) when it has
    one. Otherwise it keeps only the documents of its set's pseudo-queries: its positive is an
    arbitrary document, and negatives from the whole collection would teach the decoder to prefer
    the sampled documents for any query (docs/experiments.md#pseudo-query-negatives). BM25
    searches deeper for pseudo-queries so that about `depth` pooled documents remain.
    """
    taught = taught or {}
    doc_ids = [d.doc_id for d in collection.docs]
    depth = config.negatives().depth
    pseudo_sets = [[q for q in queries if isinstance(q, PseudoQuery) and q.query_id not in taught]
                   for queries in query_sets]
    pools = [{doc_ids[positives[q.query_id][0]] for q in pseudo} for pseudo in pseudo_sets]
    if config.negatives_run:
        rankings = run_file_rankings(config.negatives_run)
    elif config.model_negatives:
        # Taught pseudo-queries are ranked by their teacher: the model need not search them.
        rankings = model_rankings(search, [q for queries in query_sets for q in queries if q.query_id not in taught],
                                  depth)
    else:
        real = [q for queries in query_sets for q in queries if not isinstance(q, PseudoQuery)]
        groups = [(real, depth)] + [(pseudo, -(-depth * len(doc_ids) // max(1, len(pool))))
                                    for pseudo, pool in zip(pseudo_sets, pools)]
        rankings = bm25_rankings(collection, groups, config.bm25_stemmer)
    for pseudo, pool in zip(pseudo_sets, pools):
        for query in pseudo:
            rankings[query.query_id] = [d for d in rankings.get(query.query_id, []) if d in pool]
    return rankings | taught


SETTINGS_FILE = "ddro_settings.json"


def resumable_checkpoint(out_dir: Path, config: DDROConfig, resume: bool) -> Path | None:
    """The last checkpoint in `out_dir` to resume from: with `resume`, of a phase with `config`'s
    settings (another's is discarded, as `recipes.train_ddro` trains a finished phase of other
    settings again). Records the settings for the next `--resume` to compare."""
    settings = json.loads(json.dumps(config.record()))
    recorded = out_dir / SETTINGS_FILE
    same = recorded.is_file() and json.loads(recorded.read_text()) == settings
    checkpoint = latest_checkpoint(out_dir) if resume and same else None
    if checkpoint is None:
        remove_checkpoints(out_dir)  # another phase's, or not to be continued
    if distributed.is_main():
        out_dir.mkdir(parents=True, exist_ok=True)
        recorded.write_text(json.dumps(settings, indent=1) + "\n")
    distributed.barrier()
    return checkpoint


@dataclass
class DDROResult:
    """The DDRO phase's summary: its pairs, the selected step and its score, its seconds, and the
    settings it ran with (`config`, which `--resume` compares)."""
    pairs: int
    train_queries: int
    validation_queries: int
    selected_step: int
    validation_measure: str | None
    validation_score: float | None
    validation_history: list
    steps: int
    mining_seconds: float
    reference_seconds: float
    training_seconds: float
    seconds: float
    config: dict

    def to_dict(self) -> dict:
        return asdict(self)

    def selection(self) -> str:
        """One phrase saying which weights were kept and why."""
        if self.validation_measure is None:
            return f"no validation queries: weights of the last step ({self.selected_step})"
        return f"validation {self.validation_measure} {self.validation_score:.3f} (step {self.selected_step})"


def train_ddro(docid_model, collection, config: DDROConfig, out_dir, resume: bool = False,
               documents=None) -> DDROResult:
    """Run the DDRO phase on `docid_model` in place; with `resume`, continue from the last checkpoint
    in `out_dir` of a phase with the same settings (the pairs, the reference and the selection's
    start are recomputed as they were: they are deterministic). `documents` narrows the pairs to
    the queries of those documents (`training_queries`)."""
    start = time.perf_counter()
    search = constrained_search(docid_model)
    # Under a launcher, rank 0 draws the queries (writing any generated ones' cache) and mines; the
    # others receive what it found.
    train_queries, validation, positives = distributed.on_main(
        lambda: training_queries(collection, docid_model, config, out_dir, documents))
    measure = config.validation_measure if validation else None
    ranked_sets = [train_queries] + ([validation] if measure == PAIR_LOSS else [])

    def mine():
        taught = teach_pseudo_queries(collection, docid_model, train_queries + validation, positives, config)
        return positives, negative_rankings(collection, search, ranked_sets, positives, config, taught)

    positives, rankings = distributed.on_main(mine)
    pairs = make_pairs(train_queries, positives, rankings, docid_model.table, config.negatives())
    if not pairs:
        raise DdroError("no DDRO training pairs: the collection has no usable training or pseudo queries")
    if measure is None:
        # Keeping the starting weights would make the phase a silent no-op.
        logger.warning("train ddro: no validation queries, so no selection: the last weights are kept")
    elif all(isinstance(q, PseudoQuery) for q in validation) and not (docid_model.qg_model or docid_model.pseudo_queries_file):
        # Selection on random spans follows real queries poorly (docs/experiments.md#selection-on-a-bare-corpus).
        logger.warning("train ddro: no training queries, so selection reads held-out random spans, which do not "
                       "follow real queries; expect about SFT's quality (a --qg-model gives real-like pseudo-queries)")
    if measure == PAIR_LOSS:
        validation_pairs = make_pairs(validation, positives, rankings, docid_model.table, config.negatives())
        if not validation_pairs:
            raise OptionError("validation_measure", f"loss: no pairs for the {len(validation)} validation queries "
                              "(their negatives source ranks none of their documents)")
        validation_score = PairLoss(docid_model, validation_pairs, config.beta, config.loss_type)
    elif measure:
        validation_score = search_measure(search, docid_model, validation, positives, measure, config.validation_beams)
    mined = time.perf_counter()
    dataset = PairDataset(pairs, docid_model, config.span_pairs)
    ref_model = None
    if config.precompute_ref_log_probs:
        precompute_reference(docid_model, dataset)
    else:
        ref_model = copy.deepcopy(docid_model.model).eval()  # frozen: no optimizer holds its parameters
    referenced = time.perf_counter()

    selection = ValidationSelection(validation_score, config.eval_steps, config.patience, docid_model.model, measure,
                                    lower_is_better=measure == PAIR_LOSS) if measure else None
    checkpoint = resumable_checkpoint(Path(out_dir), config, resume)
    if checkpoint and selection:
        selection.restore(checkpoint)
    # The selection comes after the training callbacks: it adds its state to the checkpoint they may ask for.
    trainer = DDROTrainer(model=docid_model.model, args=replace(config, output_dir=str(out_dir)), train_dataset=dataset,
                          data_collator=pair_collator(docid_model), ref_model=ref_model,
                          callbacks=training_callbacks(checkpoint) + ([selection] if selection else []),
                          precision=docid_model.precision)
    train_from(trainer, checkpoint)
    remove_checkpoints(out_dir)  # the phase is done: its resume points are not needed
    if selection:
        docid_model.model.load_state_dict(selection.best_state)
    docid_model.model.eval()
    done = time.perf_counter()
    return DDROResult(
        pairs=len(pairs), train_queries=len(train_queries), validation_queries=len(validation),
        selected_step=selection.best_step if selection else trainer.state.global_step,
        validation_measure=measure, validation_score=selection.best if selection else None,
        validation_history=selection.history if selection else [], steps=trainer.state.global_step,
        mining_seconds=round(mined - start, 2), reference_seconds=round(referenced - mined, 2),
        training_seconds=round(done - referenced, 2), seconds=round(done - start, 2),
        config=config.record(),
    )
