"""What a computed docid keeps of its encoder's ranking: exact dense retrieval vs the reconstructed vectors.

    python benchmarks/docid_ceiling.py --collection ../shared/data/npl --docids pq:4x256 rq:4x256 --json

PQ and RQ docids are codes of document embeddings (MiniLM by default). Ranking the queries by
their dot product with each document's *reconstructed* vector (PQ: every sub-vector replaced by
the mean of its centroid's documents; RQ: the sum, level by level, of the mean residual of the
documents sharing the code) is the ranking the codes alone can express. It needs no training,
so it tells before SFT how much of the encoder's own retrieval quality a docid length throws away:
a generative retriever is not bound by it (it learns its own query-to-code mapping), but it
starts from codes that can no longer tell those documents apart. Prints RR@10, nDCG@10 and R@100
for exact retrieval and each docid shape, on the split's test or training queries, and the share of
documents whose code is unique (the rest need a collision token). Quality only, no timing.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from ddro.collections import load_collection
from ddro.docids.encoders import default_cache_dir, document_texts, embed_documents, get_encoder
from ddro.docids.pq import pq_codes, subspaces
from ddro.docids.rq import rq_codes
from ddro.evaluation import evaluate

MEASURES = ["RR@10", "nDCG@10", "R@100"]


def cluster_means(vectors: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Each row replaced by the mean of the rows sharing its label."""
    sums = np.zeros((k, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, vectors)
    return (sums / np.maximum(np.bincount(labels, minlength=k), 1)[:, None])[labels]


def reconstruct_pq(embeddings: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """Each document's vector with every sub-vector replaced by its centroid."""
    out = np.zeros_like(embeddings)
    for sub, dims in enumerate(subspaces(embeddings.shape[1], codes.shape[1])):
        out[:, dims] = cluster_means(embeddings[:, dims], codes[:, sub] - sub * k, k)
    return out


def reconstruct_rq(embeddings: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """The sum of each level's centroid, each level fitted to what the levels before it left."""
    residual = embeddings.astype(np.float64, copy=True)
    for level in range(codes.shape[1]):
        residual -= cluster_means(residual, codes[:, level] - level * k, k)
    return (embeddings - residual).astype(embeddings.dtype)


SCHEMES = {"pq": (pq_codes, reconstruct_pq), "rq": (rq_codes, reconstruct_rq)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", required=True)
    parser.add_argument("--test-fraction", type=float, default=None)
    parser.add_argument("--queries", choices=["test", "train"], default="test")
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--docids", nargs="+", default=["pq:4x256", "rq:4x256"],
                        help="scheme:MxK, scheme pq (M sub-spaces) or rq (M levels)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object (default: indented)")
    args = parser.parse_args()

    collection = load_collection(args.collection, args.test_fraction)
    encoder = get_encoder(args.encoder, args.seed)
    docs = embed_documents(document_texts(collection), encoder, default_cache_dir())
    queries = collection.queries_of(args.queries)
    query_vectors = encoder.encode([q.text for q in queries])
    split = collection.split.test if args.queries == "test" else collection.split.train
    qrels, query_ids = collection.qrels_dict(split, args.queries), [q.query_id for q in queries]
    doc_ids = [d.doc_id for d in collection.docs]

    def measure(vectors: np.ndarray) -> dict:
        scores = query_vectors @ vectors.T
        top = np.argsort(-scores, axis=1)[:, :100]
        run = {qid: [(doc_ids[j], float(scores[i, j])) for j in top[i]] for i, qid in enumerate(query_ids)}
        return {m: round(v, 4) for m, v in evaluate(run, qrels, query_ids, MEASURES)["aggregate"].items()}

    rows = [{"docids": "exact", **measure(docs)}]
    for spec in args.docids:
        scheme, _, shape = spec.partition(":")
        m, _, k = shape.partition("x")
        if scheme not in SCHEMES or not (m.isdigit() and k.isdigit()):
            parser.error(f"--docids {spec!r}: expected pq:MxK or rq:MxK")
        make_codes, reconstruct = SCHEMES[scheme]
        codes, *_ = make_codes(docs, int(m), int(k), args.seed)
        unique = len({tuple(row) for row in codes.tolist()})
        rows.append({"docids": f"{scheme} {shape}", **measure(reconstruct(docs, codes, int(k))),
                     "unique_share": round(unique / len(codes), 4)})
    report = {"collection": args.collection, "queries": args.queries, "query_count": len(queries),
              "documents": len(doc_ids), "encoder": args.encoder, "rows": rows}
    print(json.dumps(report, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
