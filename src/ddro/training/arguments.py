"""The Trainer settings every ddro training shares, as a `transformers.TrainingArguments` subclass.

`SFTConfig` and `DDROConfig` derive from it, in the manner of TRL's configs: every Trainer option
(gradient accumulation, `report_to`, logging, saving) is a field users reach as `--option_name`
without ddro declaring it; ddro redeclares only the fields whose default it changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from ddro.distributed import launched_processes
from ddro.errors import OptionError


@dataclass
class DdroTrainingArguments(TrainingArguments):
    seed: int = field(default=0, metadata={"help": "seed of the weights' initialisation, the sampling and the data order"})
    data_seed: int | None = field(default=None, metadata={"help": "seed of the data order (default: --seed)"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    report_to: None | str | list[str] = field(default="none", metadata={
        "help": "where the Trainer reports its logs: none, tensorboard, wandb, all, ..."})
    save_total_limit: int | None = field(default=1, metadata={"help": "checkpoints kept in the output folder"})
    remove_unused_columns: bool = field(default=False, metadata={
        "help": "drop dataset columns the model's forward does not take (ddro's collators need them all)"})
    dataloader_pin_memory: bool | None = field(default=None, metadata={
        "help": "pin the batches' memory (default: on a GPU only)"})
    disable_tqdm: bool | None = field(default=False, metadata={"help": "hide the Trainer's progress bars"})
    # On: the Trainer sums the loss over the processes' tokens and the model then divides by its own
    # tokens only, so under DDP a seq2seq loss comes out multiplied by the world size.
    average_tokens_across_devices: bool = field(default=False, metadata={
        "help": "average the loss over every process's tokens (off: each process averages its own, then DDP averages)"})

    def __post_init__(self):
        if self.bf16 or self.fp16:
            raise OptionError("bf16" if self.bf16 else "fp16", "is ddro's --precision: the Trainer's own mixed "
                              "precision stays off")
        if self.data_seed is None:
            self.data_seed = self.seed
        if self.dataloader_pin_memory is None:
            self.dataloader_pin_memory = torch.cuda.is_available()
        if launched_processes() > 1 and not torch.cuda.is_available():
            # Several CPU processes: without these the Trainer neither wraps the model in DDP nor
            # picks a backend that runs on CPUs.
            self.use_cpu = True
            self.ddp_backend = self.ddp_backend or "gloo"
        super().__post_init__()
        # Read from ACCELERATE_MIXED_PRECISION (`accelerate launch --mixed_precision`) when bf16 and
        # fp16 are off; `DocidTrainer` applies the model's precision instead.
        self.mixed_precision = "no"
