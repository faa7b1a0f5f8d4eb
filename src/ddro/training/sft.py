"""Supervised fine-tuning (SFT): the three next-token stages, on the Hugging Face Trainer.

Each stage is one `Trainer.train()` over its examples, starting from the previous stage's
weights, so `torchrun` / `accelerate launch` run it as DDP (`ddro.distributed`); rank 0 alone
writes the stages' files. Labels are the
docid's decoder tokens then EOS, padded with -100 (ignored by the loss). After each stage the
weights are saved to `OUT/stages/<stage>/final`; `resume=True` skips finished stages and resumes an
interrupted one from its last checkpoint (every `save_steps`, and on SIGINT or SIGTERM:
`ddro.training.checkpoints`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer
from transformers.trainer_utils import SaveStrategy, SchedulerType

from ddro import distributed
from ddro.batching import DocidCollator, TokenRows, token_rows
from ddro.models.presets import STAGES
from ddro.precision import DEFAULT_PRECISION, autocast, check_precision
from ddro.training.arguments import DdroTrainingArguments
from ddro.training.checkpoints import (latest_checkpoint, load_weights_strictly, remove_checkpoints, train_from,
                                       training_callbacks)


class ExampleDataset(torch.utils.data.Dataset):
    """Examples tokenized once up front into flat arrays (`TokenRows`: 4 bytes a token, and 4 a
    document index); items carry `input_ids` so the Trainer can group examples of similar length
    into batches (less padding: titles and queries are short). With n-gram docids each example
    also carries its `doc_target`, the span of its document it learns (`ddro.docids.ngram.SpanTargets`,
    drawn with `seed`)."""

    def __init__(self, examples, docid_model, seed: int = 0):
        self.input_ids = token_rows(docid_model, [text for text, _ in examples])
        self.docs = np.fromiter((doc for _, doc in examples), dtype=np.int32, count=len(examples))
        self.targets = None
        if docid_model.table.spans is not None:
            from ddro.docids.ngram import SpanTargets

            self.targets = TokenRows(lambda part: part, SpanTargets(docid_model, seed).for_examples(examples))

    def __len__(self):
        return len(self.docs)

    def __getitem__(self, i):
        item = {"input_ids": self.input_ids[i], "doc": int(self.docs[i])}
        if self.targets is not None:
            item["doc_target"] = self.targets[i]
        return item


class DocidTrainer(Trainer):
    """Trainer whose optimizer gives the encoder's own layers a smaller learning rate, and whose
    steps run at the model's precision (`ddro.precision`)."""

    def __init__(self, *args, encoder_lr_scale: float = 1.0, precision: str = DEFAULT_PRECISION, **kwargs):
        super().__init__(*args, **kwargs)
        self.encoder_lr_scale = encoder_lr_scale
        self.precision = check_precision(precision)

    def compute_loss(self, model, inputs, *args, **kwargs):
        with autocast(self.precision, inputs["input_ids"].device):
            return self.model_loss(model, inputs, *args, **kwargs)

    def model_loss(self, model, inputs, *args, **kwargs):
        """The training loss of a batch (called under the precision's autocast)."""
        return super().compute_loss(model, inputs, *args, **kwargs)

    def encoder_own_parameter_ids(self) -> set[int]:
        """The encoder's parameters less those the decoder or the output head also use: T5's shared
        embedding is the decoder's input embedding and (tied) its output head, which holds the
        docid tokens' rows, so it learns at the full rate."""
        model = self.model
        shared = {id(p) for p in model.get_decoder().parameters()}
        if model.get_output_embeddings() is not None:
            shared |= {id(p) for p in model.get_output_embeddings().parameters()}
        return {id(p) for p in model.get_encoder().parameters()} - shared

    def create_optimizer(self, *args, **kwargs):
        if self.optimizer is None and self.encoder_lr_scale != 1.0 and hasattr(self.model, "get_encoder"):
            encoder_ids = self.encoder_own_parameter_ids()
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            lr = self.args.learning_rate
            # The full-rate group first: the Trainer logs the first group's learning rate.
            groups = [
                {"params": [p for p in trainable if id(p) not in encoder_ids], "lr": lr},
                {"params": [p for p in trainable if id(p) in encoder_ids], "lr": lr * self.encoder_lr_scale},
            ]
            self.optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr,
                                               weight_decay=self.args.weight_decay)
            return self.optimizer
        return super().create_optimizer(*args, **kwargs)


@dataclass
class SFTConfig(DdroTrainingArguments):
    """The Trainer settings of SFT's stages; each stage takes its epochs, learning rate and batch size
    from the preset (`for_stage`)."""
    lr_scheduler_type: SchedulerType | str = field(default="linear", metadata={"help": "learning-rate schedule"})
    warmup_steps: float = field(default=0.05, metadata={
        "help": "warm-up steps, or below 1 the fraction of a stage's steps"})
    logging_steps: float = field(default=50, metadata={"help": "steps between the Trainer's logs"})
    save_strategy: SaveStrategy | str = field(default="steps", metadata={
        "help": "when a stage saves the checkpoint an interrupted stage resumes from (the newest is kept)"})
    save_steps: float = field(default=500, metadata={
        "help": "steps between two checkpoints, or below 1 the fraction of a stage's steps"})
    train_sampling_strategy: str = field(default="group_by_length", metadata={
        "help": "batches of examples of similar length (titles and queries are short: less padding)"})

    def for_stage(self, stage_dir: Path, stage, seed: int) -> "SFTConfig":
        """These settings with one stage's folder, epochs, learning rate and batch size, and the preset's seed."""
        return replace(self, output_dir=str(stage_dir), num_train_epochs=stage.epochs,
                       learning_rate=stage.learning_rate, per_device_train_batch_size=stage.batch_size,
                       seed=seed, data_seed=seed)


@dataclass
class StageResult:
    examples: int
    replayed: int
    seconds: float


@dataclass
class SFTResult:
    """What each SFT stage trained on (examples, of which replayed) and its seconds."""
    stages: dict[str, StageResult]

    @property
    def training_seconds(self) -> float:
        return sum(stage.seconds for stage in self.stages.values())

    def to_dict(self) -> dict:
        """The file form: `<stage>_examples`, `<stage>_replayed` and `<stage>_seconds` of each stage."""
        return {f"{name}_{key}": value for name, stage in self.stages.items() for key, value in asdict(stage).items()}

    @classmethod
    def from_dict(cls, values: dict) -> "SFTResult":
        return cls({name: StageResult(*(values[f"{name}_{f.name}"] for f in fields(StageResult)))
                    for name in STAGES if f"{name}_examples" in values})


def train_sft(docid_model, stage_examples: dict, preset, out_dir: Path, resume: bool = False,
              config: SFTConfig | None = None) -> SFTResult:
    """Run the stages in order, on `config`'s Trainer settings (default: `SFTConfig()`)."""
    out_dir = Path(out_dir)
    config = config or SFTConfig()
    result = SFTResult({})
    earlier: list = []
    for name in STAGES:
        own = stage_examples.get(name) or []
        # Replay goes into the last stage only: the small query stage is the one that forgets.
        examples = own + (replayed(earlier, len(own), preset.replay, preset.seed) if name == STAGES[-1] else [])
        earlier = earlier + own
        stage = preset.stage(name)
        stage_dir = out_dir / "stages" / name
        final = stage_dir / "final"
        done = result.stages[name] = StageResult(len(examples), len(examples) - len(own), 0.0)
        if resume and (stage_dir / "done.json").is_file():
            load_weights_strictly(docid_model.model, final)
            done.seconds = json.loads((stage_dir / "done.json").read_text())["seconds"]
            continue
        if not examples or stage.epochs <= 0:
            continue
        start = time.perf_counter()
        checkpoint = latest_checkpoint(stage_dir) if resume else None
        trainer = DocidTrainer(
            model=docid_model.model, args=config.for_stage(stage_dir, stage, preset.seed),
            train_dataset=ExampleDataset(examples, docid_model, preset.seed), data_collator=DocidCollator(docid_model),
            encoder_lr_scale=docid_model.encoder_lr_scale(preset),
            precision=docid_model.precision, callbacks=training_callbacks(checkpoint),
        )
        train_from(trainer, checkpoint)
        seconds = time.perf_counter() - start
        done.seconds = round(seconds, 2)
        if distributed.is_main():
            docid_model.model.save_pretrained(final, safe_serialization=True)
            (stage_dir / "done.json").write_text(json.dumps({"seconds": seconds, "examples": len(examples)}) + "\n")
        remove_checkpoints(stage_dir)  # the stage is done (its final weights saved): its resume points go
        distributed.barrier()
    docid_model.model.eval()
    return result


def replayed(earlier: list, n_own: int, ratio: float, seed: int) -> list:
    """`round(ratio * n_own)` examples drawn (seeded, without replacement while they last) from the
    earlier stages, mixed into the query stage so it does not overwrite what they taught: with only
    hundreds of training queries, a pure query stage forgets the documents (docs/experiments.md#choosing-the-default-preset)."""
    n = round(ratio * n_own)
    if not earlier or n <= 0:
        return []
    rng = np.random.default_rng(seed)
    picks = np.concatenate([rng.permutation(len(earlier)) for _ in range(-(-n // len(earlier)))])[:n]
    return [earlier[i] for i in picks]


def stage_examples_for(collection, docid_model, preset, qg_model: str | None = None, cache_dir=None,
                       pseudo_queries_file=None) -> dict:
    """The three stages' examples for a collection: training queries from its split, less the
    validation part, which is recorded on the model for the DDRO phase (as are `qg_model` and
    `pseudo_queries_file`, so that DDRO's pseudo-queries come from the same source, and the split,
    so that later steps refuse another)."""
    from ddro.collections.base import validation_part
    from ddro.training.instances import (index_examples, pseudo_examples, query_examples, record_pseudo_queries_file,
                                         teacher_examples)

    doc_index = {d.doc_id: i for i, d in enumerate(collection.docs)}
    validation = validation_part(collection.split.train, preset.validation_fraction)
    docid_model.validation_fraction = preset.validation_fraction
    docid_model.qg_model = qg_model
    record_pseudo_queries_file(docid_model, pseudo_queries_file)
    docid_model.split = collection.split.record()
    # Generated once, on rank 0 (which alone writes the cache), like the teacher's ranking below.
    pseudo = distributed.on_main(lambda: pseudo_examples(collection.docs, preset.pseudo_queries_per_doc, preset.seed,
                                                         qg_model, cache_dir, pseudo_queries_file))
    if preset.pseudo_teacher:
        from ddro.teacher import Teacher

        def labelled():
            teacher = Teacher.for_docids(preset.pseudo_teacher, collection, docid_model.table, option="pseudo_teacher")
            return teacher_examples(collection, pseudo, teacher, preset.pseudo_teacher_targets)

        pseudo += distributed.on_main(labelled)  # BM25 and the encoder rank once, on rank 0
    return {
        "index": index_examples(collection.docs, preset.passages_per_doc, preset.passage_words, preset.seed),
        "pseudo": pseudo,
        "query": query_examples(collection, doc_index, preset.query_repeats, validation),
    }


__all__ = ["train_sft", "SFTConfig", "SFTResult", "StageResult", "stage_examples_for", "ExampleDataset", "DocidTrainer"]
