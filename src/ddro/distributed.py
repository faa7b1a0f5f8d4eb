"""The processes of one job under `torchrun` or `accelerate launch`, over torch.distributed.

Outside a launcher (no `WORLD_SIZE` above 1) every function here is the one-process identity: a
barrier returns at once, a broadcast returns its value, a shard is the whole list. Under a
launcher, `start()` opens the process group from the launcher's environment (gloo on CPUs, NCCL on
GPUs) and every rank runs the same command; the work that must happen once (docids, BM25, mining,
file writes) runs on rank 0 and reaches the others through a broadcast or a file, and the work that
splits by item (search, reference log-probabilities) is sharded and gathered back in order.
"""

from __future__ import annotations

import os
from contextlib import contextmanager


def launched_processes() -> int:
    """How many processes the launcher started (1 outside a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _dist():
    import torch.distributed  # not at import: the one-process path (and `ddro --help`) does without torch

    return torch.distributed


def active() -> bool:
    """Whether a process group is open (never outside a launcher)."""
    return launched_processes() > 1 and _dist().is_available() and _dist().is_initialized()


def world_size() -> int:
    return _dist().get_world_size() if active() else 1


def rank() -> int:
    return _dist().get_rank() if active() else 0


def is_main() -> bool:
    return rank() == 0


def backend() -> str:
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


def start() -> None:
    """Open the process group when a launcher started several processes; each GPU process takes the
    device of its `LOCAL_RANK`."""
    if launched_processes() <= 1 or active():
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    _dist().init_process_group(backend())


def finish() -> None:
    """Close the process group: without it rank 0 sometimes aborts at exit."""
    if active():
        _dist().destroy_process_group()


def barrier() -> None:
    if active():
        _dist().barrier()


@contextmanager
def main_first():
    """Rank 0 runs the block first (and writes what it builds), then the others run it (and read)."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def broadcast(value):
    """Rank 0's `value` on every rank (any JSON-like object)."""
    if not active():
        return value
    box = [value if is_main() else None]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


def max_over_ranks(value: int) -> int:
    """The largest of every rank's `value` (an int), on every rank."""
    if not active():
        return value
    import torch

    device = torch.device("cuda", torch.cuda.current_device()) if backend() == "nccl" else torch.device("cpu")
    box = torch.tensor([value], dtype=torch.long, device=device)
    _dist().all_reduce(box, op=_dist().ReduceOp.MAX)
    return int(box.item())


def share(count: int, unit: int = 1) -> range:
    """This rank's contiguous part of `range(count)`, in whole blocks of `unit` items (a search's
    batches, so each query is searched in the batch it would be in one process); the parts cover
    it in rank order."""
    blocks = -(-count // unit)
    size, me = world_size(), rank()
    return range(min(count, blocks * me // size * unit), min(count, blocks * (me + 1) // size * unit))


def gather_shards(items: list, work, unit: int = 1):
    """`work(part)` of this rank's share of `items` (`share`), gathered from every rank in the
    items' order: a dict when `work` returns dicts (merged), else a list (concatenated). Every rank
    gets it."""
    part = share(len(items), unit)
    mine = work(items[part.start:part.stop])
    if not active():
        return mine
    parts = [None] * world_size()
    _dist().all_gather_object(parts, mine)
    if isinstance(mine, dict):
        return {key: value for found in parts for key, value in found.items()}
    return [item for found in parts for item in found]


def on_main(work):
    """`work()` run on rank 0 only, its result broadcast to every rank."""
    return broadcast(work() if is_main() else None)
