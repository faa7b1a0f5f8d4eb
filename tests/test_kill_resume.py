"""Killed at any moment, resumed to the same result: `ddro run` stopped by SIGKILL, SIGTERM or SIGINT
mid-stage (in SFT and in DDRO), then `--resume`d, ends byte-identical to a run never stopped.

Each run is its own process, as a user's would be; the kill comes as soon as the phase under test
has written a complete checkpoint, and the folder is then checked to be mid-phase (the checkpoint
there, the phase's result not), so the test cannot pass by killing too late.
"""

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Small checkpoint intervals so that every phase has checkpoints mid-way; the DDRO phase selects on
# the held-out pairs' loss at a high rate, so that its weights and selected step move at every
# evaluation (a resumed selection that lost its state would pick other weights).
RUN = ["run", "--preset", "tiny", "--index-epochs", "20", "--sft-save-steps", "7", "--save-steps", "3",
       "--eval-steps", "2", "--validation-beams", "4", "--patience", "100", "--validation-measure", "loss",
       "--learning-rate", "1e-3"]
WEIGHTS = ("model/model/model.safetensors", "model-ddro/model/model.safetensors")
SFT_CHECKPOINT = "training/stages/index/checkpoint-*/trainer_state.json"
DDRO_CHECKPOINT = "training/ddro/checkpoint-*/trainer_state.json"


def ddro_command(collection: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ddro.cli", *RUN, "--collection", str(collection), "--out", str(out), *extra]


def stop_at_checkpoint(command: list[str], work: Path, pattern: str, signum: int) -> subprocess.CompletedProcess:
    """Run `command` and send it `signum` as soon as `work` holds a complete checkpoint matching `pattern`."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(work.glob(pattern)) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signum)
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def result_of(out: Path) -> tuple[dict, list[str]]:
    """metrics.json less what a clock measures (`timings`, the DDRO phase's seconds), and the weights' digests."""
    metrics = json.loads((out / "metrics.json").read_text())
    metrics.pop("timings")
    metrics["ddro"] = {k: v for k, v in metrics["ddro"].items() if not k.endswith("_seconds") and k != "seconds"}
    return metrics, [hashlib.sha256((out / name).read_bytes()).hexdigest() for name in WEIGHTS]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    from conftest import write_beir

    folder = tmp_path_factory.mktemp("uninterrupted")
    collection = write_beir(folder / "tiny")
    done = subprocess.run(ddro_command(collection, folder / "run"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return collection, result_of(folder / "run")


@pytest.mark.slow
def test_sigkill_during_sft_and_during_ddro_then_resume_gives_the_uninterrupted_result(uninterrupted, tmp_path):
    collection, expected = uninterrupted
    out, work = tmp_path / "run", tmp_path / ".run.partial"
    killed = stop_at_checkpoint(ddro_command(collection, out), work, SFT_CHECKPOINT, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert list(work.glob(SFT_CHECKPOINT)) and not (work / "training/stages/index/done.json").exists()
    refused = subprocess.run(ddro_command(collection, out), capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "--resume" in refused.stderr  # not started over by mistake
    killed = stop_at_checkpoint(ddro_command(collection, out, "--resume"), work, DDRO_CHECKPOINT, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert (work / "sft_timings.json").is_file() and not (work / "ddro_summary.json").exists()
    assert not out.exists()  # nothing that looks complete while the run is unfinished
    done = subprocess.run(ddro_command(collection, out, "--resume"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert result_of(out) == expected and not work.exists()


@pytest.mark.parametrize("signum, status, phase", [
    (signal.SIGTERM, 143, SFT_CHECKPOINT),
    pytest.param(signal.SIGINT, 130, DDRO_CHECKPOINT, marks=pytest.mark.slow),  # the fast suite has one signal
])
def test_a_signal_saves_a_checkpoint_ends_in_one_line_and_resume_gives_the_same_result(
        uninterrupted, tmp_path, signum, status, phase):
    collection, expected = uninterrupted
    out, work = tmp_path / "run", tmp_path / ".run.partial"
    stopped = stop_at_checkpoint(ddro_command(collection, out), work, phase, signum)
    assert stopped.returncode == status, stopped.stderr[-2000:]
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ddro: {'terminated (SIGTERM)' if signum == signal.SIGTERM else 'interrupted (SIGINT)'}")
    assert "--resume continues" in last and "Traceback" not in stopped.stderr
    assert f"{signal.Signals(signum).name}: saving a checkpoint" in stopped.stderr
    assert not out.exists() and not (tmp_path / ".run.lock").exists()
    done = subprocess.run(ddro_command(collection, out, "--resume"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert result_of(out) == expected
