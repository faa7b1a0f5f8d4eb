"""Run `ddro` commands in each process of a `torchrun` launch, and record what the test checks.

    torchrun --nproc_per_node 2 tests/helpers/ddp_entry.py LOG_DIR WATCHED_DIR -- ddro args [-- ddro args ...]

Each `--`-separated command runs through `ddro.cli.main` in turn, in one process group. Into LOG_DIR, each process
writes (files of its own, outside WATCHED_DIR):
- `writes.<rank>`: every file or folder it created, wrote, renamed or removed under WATCHED_DIR
  (from Python's audit events);
- `training.<rank>`: a JSON line per Trainer log (the loss) and per finished training (its steps,
  the world size and a checksum of the weights), so the test can see that the ranks trained as one
  DDP model on their shares of the data.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

log_dir, watched, commands = Path(sys.argv[1]), os.path.realpath(sys.argv[2]), sys.argv[4:]
rank = os.environ.get("RANK", "0")
WRITE_EVENTS = {"os.rename", "os.replace", "os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate"}


def record(name: str, line: str) -> None:
    with open(log_dir / f"{name}.{rank}", "a") as fh:  # LOG_DIR is outside WATCHED_DIR
        fh.write(line + "\n")


def audit(event: str, args) -> None:
    if event == "open":
        path, mode = args[0], args[1]
        writes = isinstance(mode, str) and any(c in mode for c in "wax+") or isinstance(args[2], int) and args[2] & (
            os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        paths = [path] if writes else []
    elif event in WRITE_EVENTS:
        paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
    else:
        return
    for path in paths:
        if isinstance(path, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(path)).startswith(watched):
            record("writes", f"{event} {os.fsdecode(path)}")


def main() -> int:
    import torch

    from ddro import distributed
    from ddro.cli import main as ddro_main
    from ddro.training import ddro, sft

    trainer_log, trainer_train = sft.DocidTrainer.log, sft.DocidTrainer.train

    def log(self, logs, *args, **kwargs):
        if "loss" in logs:
            record("training", json.dumps({"loss": logs["loss"]}))
        return trainer_log(self, logs, *args, **kwargs)

    def train(self, *args, **kwargs):
        out = trainer_train(self, *args, **kwargs)
        digest = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode() + tensor.detach().cpu().to(torch.float32).numpy().tobytes())
        record("training", json.dumps({"trained": type(self).__name__, "steps": self.state.max_steps,
                                       "world_size": self.args.world_size, "weights": digest.hexdigest()}))
        return out

    # DDROTrainer's own log ends in DocidTrainer's.
    sft.DocidTrainer.log, sft.DocidTrainer.train = log, train
    assert ddro.DDROTrainer.train is train
    if rank != "0":
        sys.addaudithook(audit)
    parts, current = [], []
    for arg in commands:
        if arg == "--":
            parts.append(current)
            current = []
        else:
            current.append(arg)
    parts.append(current)
    # One process group for all the commands (gloo does not always reconnect after a group is
    # destroyed): each command's `finish()` waits for the last.
    finish, distributed.finish = distributed.finish, lambda: None
    try:
        for argv in parts:
            status = ddro_main(argv)
            if status:
                return status
    finally:
        finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
