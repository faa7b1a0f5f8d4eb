"""What a PQ docid keeps of its encoder's ranking: exact dense retrieval vs the PQ-reconstructed vectors.

    python benchmarks/docid_ceiling.py --collection ../shared/data/npl --pq 4x256 8x256 --json

PQ docids are codes of document embeddings (MiniLM by default). Ranking the queries by their
dot product with each document's *reconstructed* vector (every sub-vector replaced by the mean
of its centroid's documents) is the ranking the codes alone can express. It needs no training,
so it tells before SFT how much of the encoder's own retrieval quality a docid length throws away:
a generative retriever is not bound by it (it learns its own query-to-code mapping), but it
starts from codes that can no longer tell those documents apart. Prints RR@10, nDCG@10 and R@100
for exact retrieval and each PQ shape, on the split's test or training queries, and the share of
documents whose code is unique (the rest need a collision token). Quality only, no timing.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from ddro.collections import load_collection
from ddro.docids.encoders import default_cache_dir, document_texts, embed_documents, get_encoder
from ddro.docids.pq import pq_codes
from ddro.evaluation import evaluate

MEASURES = ["RR@10", "nDCG@10", "R@100"]


def reconstruct(embeddings: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """Each document's vector with every sub-vector replaced by its centroid (the mean of its cluster)."""
    out = np.zeros_like(embeddings)
    for sub, dims in enumerate(np.array_split(np.arange(embeddings.shape[1]), codes.shape[1])):
        labels = codes[:, sub] - sub * k
        sums = np.zeros((k, len(dims)), dtype=np.float64)
        np.add.at(sums, labels, embeddings[:, dims])
        centroids = sums / np.maximum(np.bincount(labels, minlength=k), 1)[:, None]
        out[:, dims] = centroids[labels]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", required=True)
    parser.add_argument("--test-fraction", type=float, default=None)
    parser.add_argument("--queries", choices=["test", "train"], default="test")
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--pq", nargs="+", default=["4x256", "8x256"], help="PQ shapes MxK")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object (default: indented)")
    args = parser.parse_args()

    collection = load_collection(args.collection, args.test_fraction)
    encoder = get_encoder(args.encoder, args.seed)
    docs = embed_documents(document_texts(collection), encoder, default_cache_dir())
    queries = collection.queries_of(args.queries)
    query_vectors = encoder.encode([q.text for q in queries])
    split = collection.split.test if args.queries == "test" else collection.split.train
    qrels, query_ids = collection.qrels_dict(split), [q.query_id for q in queries]
    doc_ids = [d.doc_id for d in collection.docs]

    def measure(vectors: np.ndarray) -> dict:
        scores = query_vectors @ vectors.T
        top = np.argsort(-scores, axis=1)[:, :100]
        run = {qid: [(doc_ids[j], float(scores[i, j])) for j in top[i]] for i, qid in enumerate(query_ids)}
        return {m: round(v, 4) for m, v in evaluate(run, qrels, query_ids, MEASURES)["aggregate"].items()}

    rows = [{"docids": "exact", **measure(docs)}]
    for shape in args.pq:
        m, _, k = shape.partition("x")
        codes, _ = pq_codes(docs, int(m), int(k), args.seed)
        unique = len({tuple(row) for row in codes.tolist()})
        rows.append({"docids": f"pq {shape}", **measure(reconstruct(docs, codes, int(k))),
                     "unique_share": round(unique / len(codes), 4)})
    report = {"collection": args.collection, "queries": args.queries, "query_count": len(queries),
              "documents": len(doc_ids), "encoder": args.encoder, "rows": rows}
    print(json.dumps(report, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
