"""Build a `DocidTrie` over N random PQ-style docids and time batched lookups.

    python benchmarks/trie_scale.py --docids 1000000 --length 24 --json

Docids are like PQ's: position m draws one of `--codes` tokens of its own sub-space
(token = m * codes + c). Peak memory is what Python allocated while building (tracemalloc sees
numpy's buffers), not counting the input array; lookups are the median of `--repeats` runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc

import numpy as np
import torch

from ddro.decoding.trie import DocidTrie


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docids", type=int, default=1_000_000)
    parser.add_argument("--length", type=int, default=24)
    parser.add_argument("--codes", type=int, default=256)
    parser.add_argument("--prefixes", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object (default: a table)")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    vocab = args.length * args.codes
    dtype = np.int16 if vocab <= np.iinfo(np.int16).max else np.int32
    codes = (rng.integers(0, args.codes, size=(args.docids, args.length)) + np.arange(args.length) * args.codes).astype(dtype)

    tracemalloc.start()
    start = time.perf_counter()
    trie = DocidTrie(codes, vocab)
    build_seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    prefixes = torch.from_numpy(codes[rng.integers(0, args.docids, args.prefixes), : args.depth].astype(np.int64))
    timings = {"mask": [], "lists": [], "step": []}
    states = trie.walk(prefixes)
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        mask = trie.next_tokens_mask(prefixes)
        t1 = time.perf_counter()
        trie.allowed(trie.walk(prefixes), args.depth)
        t2 = time.perf_counter()
        trie.allowed(states, args.depth)  # carried state: one step of a beam search
        t3 = time.perf_counter()
        timings["mask"].append(t1 - t0)
        timings["lists"].append(t2 - t1)
        timings["step"].append(t3 - t2)
    assert bool(mask.any(dim=1).all()), "every real prefix must allow a next token"

    result = {
        "docids": args.docids,
        "length": args.length,
        "vocab_size": vocab,
        "build_seconds": round(build_seconds, 3),
        "peak_build_memory_mb": round(peak / 2**20, 1),
        "trie_memory_mb": round(trie.nbytes / 2**20, 1),
        "bytes_per_docid": round(trie.nbytes / args.docids, 1),
        "nodes": trie.n_nodes,
        "edges": len(trie.edge_key),
        "lookup_prefixes": args.prefixes,
        "lookup_depth": args.depth,
        "lookup_mask_ms": round(1000 * statistics.median(timings["mask"]), 3),
        "lookup_lists_ms": round(1000 * statistics.median(timings["lists"]), 3),
        "step_from_carried_state_ms": round(1000 * statistics.median(timings["step"]), 3),
        "torch_threads": torch.get_num_threads(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:28s} {value}")


if __name__ == "__main__":
    main()
