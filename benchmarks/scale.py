"""How each stage that needs no trained model grows with the collection: 10K, 100K and 1M documents.

    python benchmarks/scale.py --sizes 10000,100000,1000000 --json > benchmarks/results/scale-cpu-2core.json

A seeded synthetic collection: documents of `--words` words drawn from a Zipf law over a
`--vocabulary`-word lexicon, and `--queries` queries of 3-6 words drawn from one document each
(that document is the query's positive). For each size, each stage's seconds and peak memory:

- `docids_pq`, `docids_rq`: PQ and RQ 4 x 256 (the `cpu` preset's shapes) of random 384-d
  embeddings (no encoder pass: that cost is the encoder's, per document), collisions resolved;
  `docids_atomic`: one token per document;
- `bm25_index`: BM25 over the documents (ddro's `BM25Retriever`, stemmed);
- `negatives`: the queries' BM25 top 1,000 and band-negative pairs (`make_pairs`, 8 per query);
- `model`: the `cpu` preset's model for the PQ docids (MiniLM encoder, one decoder layer);
- `trie`: the search's prefix trie over the PQ docids and its docid -> documents lookup;
- `search`: constrained beam search (beam `--beams`) of `--search-queries` queries with that model
  over all the docids, untrained (its cost does not depend on what the weights learned).

Memory is the process's resident set: `rss_peak_mb` its peak during the stage (sampled every
10 ms), `rss_added_mb` what the stage added to the resident set it started from. Output: one JSON
object with every size's stages and, per stage, the exponent k of seconds ~ N^k fitted over the
sizes (least squares on the logarithms).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np


class PeakRSS:
    """The process's resident set, sampled by a thread while a stage runs."""

    def __init__(self, interval: float = 0.01):
        import psutil

        self.process, self.interval = psutil.Process(), interval

    @contextmanager
    def measure(self, record: dict):
        start_rss = self.process.memory_info().rss
        peak = [start_rss]
        running = threading.Event()
        running.set()

        def sample():
            while running.is_set():
                peak[0] = max(peak[0], self.process.memory_info().rss)
                time.sleep(self.interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        try:
            yield
        finally:
            record["seconds"] = round(time.perf_counter() - start, 3)
            running.clear()
            sampler.join()
            peak[0] = max(peak[0], self.process.memory_info().rss)
            record["rss_peak_mb"] = round(peak[0] / 2**20, 1)
            record["rss_added_mb"] = round((peak[0] - start_rss) / 2**20, 1)


def synthetic_collection(n_docs: int, n_queries: int, words: int, vocabulary: int, seed: int):
    """`(documents, queries, positives)`: Zipf-drawn documents, queries drawn from one document each."""
    from ddro.collections.base import Document, Query

    rng = np.random.default_rng(seed)
    lexicon = np.array([f"w{i}" for i in range(vocabulary)])
    weights = 1.0 / np.arange(1, vocabulary + 1) ** 1.07
    ids = rng.choice(vocabulary, size=(n_docs, words), p=weights / weights.sum())
    docs = [Document(f"d{i}", "", " ".join(lexicon[row])) for i, row in enumerate(ids)]
    sources = rng.integers(0, n_docs, n_queries)
    queries = [Query(f"q{q}", " ".join(lexicon[rng.choice(ids[d], size=int(rng.integers(3, 7)), replace=False)]))
               for q, d in enumerate(sources)]
    return docs, queries, {f"q{q}": [int(d)] for q, d in enumerate(sources)}


def computed_table(scheme: str, embeddings: np.ndarray, doc_ids: list[str], seed: int):
    from ddro.docids.pq import pq_codes
    from ddro.docids.rq import rq_codes
    from ddro.docids.table import DocidTable, resolve_with_dup_tokens

    make = pq_codes if scheme == "pq" else rq_codes
    codes, vocab, _ = make(embeddings, 4, 256, seed)
    codes, vocab, groups = resolve_with_dup_tokens(codes, vocab, "suffix")
    return DocidTable(scheme, doc_ids, codes, vocab, True, {"scheme": scheme}, None, groups, "suffix")


def run_size(n: int, args, meter: PeakRSS) -> dict:
    from ddro.bm25 import BM25Retriever
    from ddro.docids import DocidConfig, build_docids
    from ddro.retrieval import GenerativeRetriever
    from ddro.training.negatives import NegativeConfig, make_pairs

    stages: dict[str, dict] = {}

    def stage(name: str):
        gc.collect()
        print(f"scale: {n} documents: {name}", file=sys.stderr, flush=True)
        return meter.measure(stages.setdefault(name, {}))

    docs, queries, positives = synthetic_collection(n, args.queries, args.words, args.vocabulary, args.seed)
    doc_ids = [d.doc_id for d in docs]
    embeddings = np.random.default_rng(args.seed).normal(size=(n, 384)).astype(np.float32)
    tables = {}
    for scheme in ("pq", "rq"):
        with stage(f"docids_{scheme}"):
            tables[scheme] = computed_table(scheme, embeddings, doc_ids, args.seed)
    del embeddings
    with stage("docids_atomic"):
        build_docids(SimpleNamespace(docs=docs), DocidConfig(scheme="atomic"))
    with stage("bm25_index"):
        bm25 = BM25Retriever().index(docs)
    with stage("negatives"):
        run = bm25.search(queries, k=min(1000, n))
        rankings = {qid: [doc_id for doc_id, _ in ranked] for qid, ranked in run.items()}
        del run
        pairs = make_pairs(queries, positives, rankings, tables["pq"], NegativeConfig())
    stages["negatives"]["pairs"] = len(pairs)
    del bm25, rankings, pairs
    table = tables["pq"]
    with stage("model"):
        model = build_model(table, args.seed)
    with stage("trie"):
        retriever = GenerativeRetriever(model)  # the trie and the docid -> documents lookup
    with stage("search"):
        searched = retriever.search(queries[:args.search_queries], k=args.beams, num_beams=args.beams, progress=False)
    stages["search"]["queries"] = len(searched)
    stages["search"]["queries_per_second"] = round(len(searched) / stages["search"]["seconds"], 2)
    return {"documents": n, "stages": stages}


def build_model(table, seed: int):
    from ddro.models import build_docid_model, get_preset

    docid_model = build_docid_model(get_preset("cpu"), table, [], seed)
    docid_model.model.eval()
    return docid_model


def exponents(results: list[dict]) -> dict:
    """Per stage, k of seconds ~ N^k by least squares on log-log (None with fewer than two sizes)."""
    if len(results) < 2:
        return {}
    sizes = np.log([r["documents"] for r in results])
    out = {}
    for name in results[0]["stages"]:
        seconds = np.log([max(r["stages"][name]["seconds"], 1e-3) for r in results])
        out[name] = round(float(np.polyfit(sizes, seconds, 1)[0]), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--words", type=int, default=50, help="words per document (MS MARCO passages: about 56)")
    parser.add_argument("--vocabulary", type=int, default=100_000)
    parser.add_argument("--search-queries", type=int, default=64)
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON object (default: a table)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    meter = PeakRSS()
    results = [run_size(int(n), args, meter) for n in args.sizes.split(",")]
    report = {"settings": vars(args), "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "sizes": results, "exponent_k": exponents(results)}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    names = list(results[0]["stages"])
    print("stage".ljust(15) + "".join(f"{r['documents']:>22,}" for r in results) + "       k")
    for name in names:
        cells = "".join(f"{r['stages'][name]['seconds']:>10.2f} s {r['stages'][name]['rss_peak_mb']:>7.0f} MB"
                        for r in results)
        print(name.ljust(15) + cells + f"  {report['exponent_k'].get(name)}")


if __name__ == "__main__":
    main()
