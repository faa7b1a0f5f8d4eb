"""Peak memory of `ddro run --preset tiny` on a collection holding one very long document.

    python benchmarks/long_document.py --megabytes 50 --json benchmarks/results/long-document-cpu-2core.json

The collection: the tests' 40 short documents (`tests/conftest.write_beir`) plus one document of
`--megabytes` MB of seeded random words (a vocabulary of 5,010). Each command runs in its own
process; its peak resident memory is the child's `ru_maxrss`. Commands: `ddro inspect` (reading),
`ddro docids` (LSA PQ docids) and the whole `ddro run`, once with the long document and once
without it, so the cost of the document alone shows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_of(command: list[str], env: dict) -> dict:
    """Seconds and peak resident MB of one command in a fresh child process (of its own, so that
    `ru_maxrss` of the children is this command's)."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode; "
             "print(rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, env=env, check=True)
    rc, seconds, kilobytes = out.stdout.split()
    if rc != "0":
        raise SystemExit(f"{' '.join(command)} exited {rc}")
    return {"seconds": round(float(seconds), 1), "peak_mb": int(kilobytes) // 1024}


def long_text(megabytes: float, seed: int) -> str:
    rng = random.Random(seed)
    words = ["lift", "wing", "heat", "flow", "shock", "plate", "layer", "boundary", "stream", "theory"] + \
        [f"w{i}" for i in range(5000)]
    size = int(megabytes * 1_000_000)
    text = " ".join(rng.choice(words) for _ in range(size // 5 + 1))
    return text[:text.rfind(" ", 0, size)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the results here too")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import write_beir

    ddro = [sys.executable, "-m", "ddro.cli"]
    results = {"megabytes": args.megabytes, "cpu_count": os.cpu_count(), "commands": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = os.environ | {"HF_HUB_OFFLINE": "1", "DDRO_CACHE": str(tmp / "cache")}
        for name, megabytes in (("short documents only", 0), ("with the long document", args.megabytes)):
            collection = write_beir(tmp / f"c{megabytes}")
            if megabytes:
                with open(collection / "corpus.jsonl", "a") as fh:
                    fh.write(json.dumps({"_id": "long", "title": "long", "text": long_text(megabytes, args.seed)}) + "\n")
            start = time.perf_counter()
            results["commands"][name] = {
                "inspect": peak_of(ddro + ["inspect", "--collection", str(collection)], env),
                "docids": peak_of(ddro + ["docids", "--collection", str(collection), "--out", str(tmp / f"pq{megabytes}"),
                                          "--scheme", "pq", "--encoder", "lsa:16", "--pq-m", "2", "--pq-k", "8"], env),
                "run": peak_of(ddro + ["run", "--collection", str(collection), "--out", str(tmp / f"run{megabytes}"),
                                       "--preset", "tiny"], env),
            }
            print(f"{name}: {json.dumps(results['commands'][name])} ({time.perf_counter() - start:.0f} s)",
                  file=sys.stderr)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
