"""RR@10, nDCG@10 and R@100 of a trained model on a collection's validation queries (the training
queries SFT held out) or test queries, searched with the current code: to re-rank a model trained
earlier, e.g. after a change of the ranking alone.

    python benchmarks/validation_search.py --collection ../shared/data/cranfield --model runs/cranfield-ngram/model
"""

from __future__ import annotations

import argparse
import json

from ddro.collections import load_collection
from ddro.collections.base import validation_part
from ddro.evaluation import evaluate
from ddro.retrieval import GenerativeRetriever


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--beams", type=int, default=100)
    parser.add_argument("--parts", nargs="+", default=["validation"], choices=["validation", "test"])
    args = parser.parse_args()
    collection = load_collection(args.collection)
    retriever = GenerativeRetriever.load(args.model)
    held_out = validation_part(collection.split.train, retriever.docid_model.validation_fraction or 0.2)
    out = {"collection": collection.name, "model": args.model, "beams": args.beams}
    for part in args.parts:
        if part == "validation":
            queries = [q for q in collection.queries_of("train") if q.query_id in held_out]
            qrels = collection.qrels_dict(collection.split.train, "train")
        else:
            queries, qrels = collection.queries_of("test"), collection.qrels_dict(collection.split.test, "test")
        run = retriever.search(queries, k=100, num_beams=args.beams, progress=False)
        measured = evaluate(run, qrels, [q.query_id for q in queries], ["RR@10", "nDCG@10", "R@100"])
        out[part] = {name: round(value, 4) for name, value in measured["aggregate"].items()} | {"queries": len(queries)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
