"""DDP under `torchrun`: two CPU processes (gloo) train SFT and DDRO as one model, search in shards,
and leave exactly the files one process leaves, written by rank 0 alone."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA, needs_data, write_beir
from ddro import distributed

ENTRY = Path(__file__).parent / "helpers" / "ddp_entry.py"
# Bounds a hung process group: the whole two-process chain takes well under a minute.
TIMEOUT = 600


@pytest.mark.parametrize("count,unit,size", [(10, 1, 3), (75, 8, 2), (3, 8, 4), (0, 1, 2), (17, 4, 5)])
def test_shares_cover_the_items_in_order_in_whole_units(monkeypatch, count, unit, size):
    monkeypatch.setattr(distributed, "world_size", lambda: size)
    parts = []
    for me in range(size):
        monkeypatch.setattr(distributed, "rank", lambda me=me: me)
        parts.append(distributed.share(count, unit))
    assert [i for part in parts for i in part] == list(range(count))
    assert all(part.start % unit == 0 for part in parts if len(part))
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= unit * (1 + (count // unit) % size > 0)


def test_one_process_is_the_identity():
    assert not distributed.active() and distributed.is_main() and distributed.world_size() == 1
    assert distributed.broadcast({"a": 1}) == {"a": 1}
    assert distributed.on_main(lambda: [1, 2]) == [1, 2]
    assert distributed.gather_shards(list(range(5)), lambda part: [x * 2 for x in part]) == [0, 2, 4, 6, 8]
    assert distributed.gather_shards(["a", "b"], lambda part: {x: 1 for x in part}, unit=8) == {"a": 1, "b": 1}
    with distributed.main_first():
        distributed.barrier()


def launch(processes: int, log_dir: Path, watched: Path, *commands: list[str], cwd: Path):
    """The commands, `--`-separated, through `ddp_entry.py`: under torchrun with `processes` > 1."""
    log_dir.mkdir(parents=True, exist_ok=True)
    argv = [str(ENTRY), str(log_dir), str(watched)]
    for command in commands:
        argv += ["--", *command]
    if processes > 1:
        argv = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] + argv
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent),
                                                                                 env.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def training_records(log_dir: Path, rank: int) -> list[dict]:
    path = log_dir / f"training.{rank}"
    return [json.loads(line) for line in path.read_text().splitlines()]


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def non_main_writes(log_dir: Path) -> list[str]:
    """What processes other than rank 0 wrote, less the Trainer's checkpoint folders: each process
    keeps its own RNG state there to resume from (`rng_state_<rank>.pth`), and SFT removes them."""
    lines = [line for path in log_dir.glob("writes.*") for line in path.read_text().splitlines()]
    return [line for line in lines if not (line.startswith("os.mkdir ") and Path(line.split()[1]).name.startswith(
        "checkpoint-"))]


TINY_DOCIDS = ["--scheme", "pq", "--pq-m", "2", "--pq-k", "8", "--encoder", "lsa:16"]


def test_two_processes_train_sft_and_ddro_as_one_model_and_search_in_shards(tmp_path):
    collection = write_beir(tmp_path / "c", n_docs=40)
    results = {}
    for processes in (1, 2):
        folder = tmp_path / f"processes-{processes}"
        work, logs = folder / "w", folder / "logs"
        done = launch(processes, logs, work,
                      ["docids", "--collection", str(collection), "--out", "w/docids", *TINY_DOCIDS],
                      ["train", "sft", "--collection", str(collection), "--docids", "w/docids", "--out", "w/sft",
                       "--preset", "tiny", "--pseudo-epochs", "4", "--logging_steps", "1"],
                      ["train", "ddro", "--collection", str(collection), "--model", "w/sft", "--out", "w/ddro",
                       "--max_steps", "20", "--eval-steps", "10", "--learning_rate", "1e-3", "--logging_steps", "2"],
                      ["search", "--collection", str(collection), "--model", "w/ddro", "--out", "w/run.trec",
                       "--queries", "all", "--batch-size", "2"],
                      cwd=folder)
        results[processes] = done, work, logs
    done, work, logs = results[2]
    # One summary line per command: rank 1's are kept off stdout.
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == ["docids", "train sft", "train ddro", "search"]
    ranks = [training_records(logs, rank) for rank in (0, 1)]
    trained = [[r for r in records if "trained" in r] for records in ranks]
    # DDP: both ranks end every training with the same weights, each having trained on half the data
    # (a stage of E epochs over n examples takes E * ceil(n / (2 * batch)) steps, not E * ceil(n / batch)).
    assert [r["weights"] for r in trained[0]] == [r["weights"] for r in trained[1]]
    assert [r["world_size"] for r in trained[0]] == [2] * 4
    one_process = [r for r in training_records(results[1][2], 0) if "trained" in r]
    # index 120 examples, pseudo 80 x 4 epochs, query 4, at batch 32; DDRO at its 20 steps.
    assert [r["steps"] for r in one_process] == [4, 12, 1, 20]
    assert [r["steps"] for r in trained[0]] == [2, 8, 1, 20]
    losses = [r["loss"] for r in ranks[0] if "loss" in r]
    assert losses and all(loss == loss and abs(loss) < float("inf") for loss in losses)
    sft_losses, ddro_losses = losses[:11], losses[11:]
    assert sft_losses[-1] < sft_losses[0] and ddro_losses[-1] < ddro_losses[0]
    # Same files as one process leaves, none half-written, and rank 1 wrote none of them.
    assert files_under(work) == files_under(results[1][1])
    assert not [name for name in files_under(work) if ".partial" in name or ".old-" in name]
    assert non_main_writes(logs) == []
    # The gathered search equals one process's search of the same model, line for line.
    alone = tmp_path / "alone"
    launch(1, tmp_path / "log-alone", alone, ["search", "--collection", str(collection), "--model", str(work / "ddro"),
                                              "--out", str(alone / "run.trec"), "--queries", "all",
                                              "--batch-size", "2"], cwd=tmp_path)
    assert (work / "run.trec").read_text() == (alone / "run.trec").read_text()
    assert len((work / "run.trec").read_text().splitlines()) > 10


@pytest.mark.slow
@needs_data("cranfield")
def test_ddro_run_under_torchrun_on_cranfield_writes_one_metrics_file(tmp_path):
    logs = tmp_path / "logs"
    done = launch(2, logs, tmp_path / "run", ["run", "--preset", "tiny", "--collection", str(DATA / "cranfield"),
                                              "--out", "run"], cwd=tmp_path)
    assert len(done.stdout.splitlines()) == 1 and done.stdout.startswith("run: cranfield 75 test queries")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"bm25", "sft", "ddro"} <= set(metrics["systems"])
    assert non_main_writes(logs) == []
    assert [r["world_size"] for r in training_records(logs, 1) if "trained" in r] == [2] * 4


def test_the_accelerate_config_files_load_and_start_the_processes_they_say():
    from accelerate.commands.config.config_args import load_config_from_file

    folder = Path(__file__).resolve().parents[1] / "configs" / "accelerate"
    expected = {"cpu-2-processes.yaml": 2, "1-gpu.yaml": 1, "8-gpus-1-node.yaml": 8, "16-gpus-2-nodes.yaml": 16}
    assert sorted(p.name for p in folder.glob("*.yaml")) == sorted(expected)
    for name, processes in expected.items():
        config = load_config_from_file(str(folder / name))
        assert config.num_processes == processes and config.mixed_precision == "no", name
        # accelerate starts several local processes only for MULTI_GPU (MULTI_CPU starts one).
        assert (config.distributed_type.value == "MULTI_GPU") == (processes > 1), name
