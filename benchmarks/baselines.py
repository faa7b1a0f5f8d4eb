"""The baselines `ddro run` reports beside SFT and DDRO, without training: BM25 with each stemmer
and exact dense retrieval with a docid encoder, on a collection's test queries.

    python benchmarks/baselines.py --collection ../shared/data/cranfield --json
    python benchmarks/baselines.py --collection ../shared/data/lisa --test-fraction 1.0 --json

Prints each system's measures (the README's Results columns) and paired tests of stemmed BM25
against unstemmed BM25 and of the dense row against stemmed BM25. Document embeddings come from
the cache `ddro docids` fills (`$DDRO_CACHE`), so a collection is embedded once.
"""

from __future__ import annotations

import argparse
import json

from ddro.bm25 import BM25Retriever
from ddro.collections import load_collection
from ddro.dense import encoder_retriever
from ddro.evaluation import evaluate, paired_tests

SHOWN = ["RR@10", "nDCG@10", "R@10", "R@100", "Success@1", "Success@10"]
TESTED = ["RR@10", "nDCG@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", required=True)
    parser.add_argument("--test-fraction", type=float, default=None)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--stemmers", nargs="+", default=["english", "none", "porter"])
    parser.add_argument("--json", action="store_true", help="print one JSON object (default: indented)")
    args = parser.parse_args()

    collection = load_collection(args.collection, args.test_fraction)
    queries = collection.queries_of("test")
    query_ids = [q.query_id for q in queries]
    qrels = collection.qrels_dict(collection.split.test)
    runs = {f"bm25-{s}": BM25Retriever(stemmer=s).index(collection.docs).search(queries, k=100) for s in args.stemmers}
    dense = f"dense-{args.encoder}"
    runs[dense] = encoder_retriever(collection, args.encoder).search(queries, k=100)
    results = {name: evaluate(run, qrels, query_ids) for name, run in runs.items()}
    pairs = [(a, b) for a, b in [("bm25-english", "bm25-none"), (dense, "bm25-english")] if a in runs and b in runs]
    report = {
        "collection": args.collection, "test_queries": len(query_ids),
        "systems": {name: {m: round(r["aggregate"][m], 4) for m in SHOWN} for name, r in results.items()},
        "significance": {f"{a}_vs_{b}": {m: {k: round(v, 4) for k, v in tests.items()} for m, tests in
                                         paired_tests(results[a]["per_query"], results[b]["per_query"]).items()
                                         if m in TESTED} for a, b in pairs},
    }
    print(json.dumps(report, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
