"""Checkpoints that an interrupted training continues from, at any step.

- The Trainer saves a checkpoint (weights, optimizer, scheduler, RNG states, data position) every
  `save_steps`, keeping the newest only (`save_total_limit`); `latest_checkpoint` finds the newest
  complete one (the Trainer writes `trainer_state.json` last), so a `kill -9` during a save falls
  back on the one before.
- `stopping_on_signals`: SIGINT or SIGTERM during `Trainer.train()` lets the step in progress
  finish, saves a checkpoint and stops training; the command then ends as the signal asks (exit
  130 or 143, `ddro.cli`), and `--resume` continues from that step. A second signal ends at once.
- `ReplayEpochOrder`: a checkpoint taken mid-epoch resumes into the same batches as the
  uninterrupted run, so that a resumed training is the same training.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from transformers import TrainerCallback

from ddro import distributed
from ddro.errors import DdroError, Terminated

TRAINER_STATE = "trainer_state.json"
_EXCEPTIONS = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated}


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The Trainer's newest complete `checkpoint-<step>` in `folder`, or None."""
    folder = Path(folder)
    complete = [path for path in folder.glob("checkpoint-*")
                if path.name.split("-")[-1].isdigit() and (path / TRAINER_STATE).is_file()]
    return max(complete, key=lambda path: int(path.name.split("-")[-1]), default=None)


def checkpoint_dir(args, state) -> Path:
    """The folder the Trainer saves this step's checkpoint in."""
    return Path(args.output_dir) / f"checkpoint-{state.global_step}"


EPOCH_RNG = "epoch_rng_state.safetensors"


def _epoch_rng_file(folder: Path) -> Path:
    """This process's `EPOCH_RNG` in a checkpoint folder (one per rank under a launcher, as the
    Trainer's own RNG files)."""
    if distributed.world_size() == 1:
        return folder / EPOCH_RNG
    return folder / f"{Path(EPOCH_RNG).stem}_{distributed.rank()}.safetensors"


def _rng_states() -> dict:
    import torch

    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def load_weights_strictly(model, folder: Path) -> None:
    """A finished stage's or a checkpoint's weights (`model*.safetensors`: a checkpoint holds other
    tensors too), loaded strictly: the only keys they may lack are tied ones (the same tensor as a
    key they have), which `save_pretrained` leaves out; anything else means the weights are of
    another model, which would otherwise train on from partly random weights."""
    from safetensors.torch import load_file

    state = {}
    for shard in sorted(folder.glob("model*.safetensors")):
        state.update(load_file(shard))
    own = model.state_dict()
    mismatched = sorted(k for k, v in state.items() if k in own and own[k].shape != v.shape)
    unexpected = sorted(set(state) - set(own))
    loaded = {own[k].data_ptr() for k in state if k in own}
    missing = sorted(k for k in set(own) - set(state) if own[k].data_ptr() not in loaded)
    if mismatched or unexpected or missing:
        problems = [f"{label} {keys[0]!r}" + (f" and {len(keys) - 1} more" if len(keys) > 1 else "")
                    for label, keys in (("other shape for", mismatched), ("unknown key", unexpected),
                                        ("no weights for", missing)) if keys]
        raise DdroError(f"{folder}: --resume found weights of another model ({'; '.join(problems)}); "
                        "pass --overwrite, or another --out")
    model.load_state_dict(state, strict=False)  # strict would count the tied keys left out


class ReplayEpochOrder(TrainerCallback):
    """The Trainer's samplers draw an epoch's order from torch's global RNG when the epoch starts,
    and a resumed Trainer draws the resumed epoch's order again before skipping the batches done;
    from the checkpoint's RNG state that would be another order. So each checkpoint keeps the RNG
    state of its epoch's start (`EPOCH_RNG`), which is put back before the resumed epoch is drawn
    (the Trainer then restores the checkpoint's own state for the steps that follow)."""

    def __init__(self, resume_from: Path | None = None):
        self.resume_from = resume_from
        self.epoch_start: dict = {}

    def on_epoch_begin(self, args, state, control, **kwargs):
        import torch

        if self.resume_from is not None and _epoch_rng_file(self.resume_from).is_file():
            from safetensors.torch import load_file

            saved = load_file(_epoch_rng_file(self.resume_from))
            torch.set_rng_state(saved["cpu"])
            if "cuda" in saved and torch.cuda.is_available():
                torch.cuda.set_rng_state(saved["cuda"])
        self.resume_from = None
        self.epoch_start = _rng_states()

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save:
            from safetensors.torch import save_file

            folder = checkpoint_dir(args, state)
            folder.mkdir(parents=True, exist_ok=True)
            save_file(self.epoch_start, _epoch_rng_file(folder))
        return control


class StopOnSignal(TrainerCallback):
    """At the end of a step after SIGINT or SIGTERM (on any process of a distributed job): save a
    checkpoint and stop. Put it before callbacks that add files to a checkpoint
    (`ValidationSelection`): they see `control.should_save` set."""

    def __init__(self):
        self.received: int = 0  # the signal's number; 0 while none came

    def on_step_end(self, args, state, control, **kwargs):
        self.received = distributed.max_over_ranks(self.received)
        if self.received:
            control.should_save = True
            control.should_training_stop = True
        return control


@contextmanager
def stopping_on_signals(callback: StopOnSignal):
    """While the block trains: the first SIGINT or SIGTERM asks `callback` to save and stop; when
    the block has stopped so, the signal's exception is raised (KeyboardInterrupt, `Terminated`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in _EXCEPTIONS}

    def ask_to_stop(number, frame):
        if callback.received:  # a second signal: stop now, without waiting for the checkpoint
            raise _EXCEPTIONS[number]
        callback.received = number
        print(f"ddro: {signal.Signals(number).name}: saving a checkpoint after this step, then stopping "
              "(again to stop at once)", file=sys.stderr, flush=True)

    for number in _EXCEPTIONS:
        signal.signal(number, ask_to_stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if callback.received:
        raise _EXCEPTIONS[signal.Signals(callback.received)]


def training_callbacks(checkpoint: Path | None) -> list:
    """The callbacks a resumable training starts its Trainer's list with (before any that add files
    to a checkpoint): stop on a signal, and replay the resumed epoch's order from `checkpoint`."""
    return [StopOnSignal(), ReplayEpochOrder(checkpoint)]


def train_from(trainer, checkpoint: Path | None) -> None:
    """`trainer.train()`, continued from `checkpoint` when there is one (its weights checked first:
    one line if they are another model's), stopping on SIGINT or SIGTERM after a checkpoint
    (`stopping_on_signals`); the Trainer's logs go to stderr, keeping stdout for results. The
    Trainer's callbacks are to start with `training_callbacks(checkpoint)`."""
    if checkpoint:
        load_weights_strictly(trainer.model, checkpoint)
    stop = next(callback for callback in trainer.callback_handler.callbacks if isinstance(callback, StopOnSignal))
    with contextlib.redirect_stdout(sys.stderr), stopping_on_signals(stop):
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)


def remove_checkpoints(folder: Path) -> None:
    """The Trainer's checkpoints in `folder`, once they are not needed (rank 0 only)."""
    if distributed.is_main():
        for checkpoint in Path(folder).glob("checkpoint-*"):
            shutil.rmtree(checkpoint, ignore_errors=True)


__all__ = ["load_weights_strictly", "StopOnSignal", "ReplayEpochOrder", "stopping_on_signals", "latest_checkpoint",
           "checkpoint_dir", "training_callbacks", "train_from", "remove_checkpoints"]
