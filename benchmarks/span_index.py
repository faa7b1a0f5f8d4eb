"""The span index of n-gram docids on a real collection: build time, size, and its allowed-token
step inside real searches against the docid trie's at the same beam width; and the `fm-index`
package for comparison.

    python benchmarks/span_index.py --collection ../shared/data/cranfield \
        --ngram-model runs/cran-ngram/model --trie-model runs/cran-pq/model --json

Both models search the collection's test queries (8 a batch, as `ddro search` does) at each
`--beams`; the constraint's two calls a step (`allowed`, then `advance` of the chosen beams) are
timed inside the search, so the states are the ones a trained model reaches. Reported: each
search's queries per second, the constraint's seconds, and its mean milliseconds a step, per
step and overall. `fm-index` (a Rust FM-index over a string) is built over the same tokens, one
character each; it counts a whole pattern's occurrences but cannot list the tokens that may
follow one, so its allowed-token step would be one `count` per vocabulary token, timed as such
on a sample.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict

import numpy as np
import torch

from ddro.collections import load_collection
from ddro.decoding.spans import SpanIndex
from ddro.docids import DocidConfig, build_docids
from ddro.retrieval import GenerativeRetriever


def timed(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class TimedConstraint:
    """A search constraint whose `allowed` and `advance` calls are timed, by step."""

    def __init__(self, inner):
        self.inner = inner
        self.seconds: dict[int, float] = defaultdict(float)
        self.calls: dict[int, int] = defaultdict(int)

    def root_states(self, *args, **kwargs):
        return self.inner.root_states(*args, **kwargs)

    def is_complete(self, *args):
        return self.inner.is_complete(*args)

    @property
    def end_token(self):
        return getattr(self.inner, "end_token", None)

    def _timed(self, depth: int, call, *args):
        start = time.perf_counter()
        out = call(*args)
        self.seconds[depth] += time.perf_counter() - start
        return out

    def allowed(self, states, depth):
        self.calls[depth] += 1
        return self._timed(depth, self.inner.allowed, states, depth)

    def advance(self, states, tokens, depth):
        return self._timed(depth, self.inner.advance, states, tokens, depth)


def searched(model_dir: str, queries, beams: int) -> dict:
    retriever = GenerativeRetriever.load(model_dir)
    retriever.constraint = timed_constraint = TimedConstraint(retriever.constraint)
    retriever.search(queries[:8], num_beams=beams, progress=False)  # warm-up
    timed_constraint.seconds.clear()
    timed_constraint.calls.clear()
    start = time.perf_counter()
    retriever.search(queries, num_beams=beams, progress=False)
    seconds = time.perf_counter() - start
    constraint = sum(timed_constraint.seconds.values())
    steps = sorted(timed_constraint.seconds)
    return {
        "scheme": retriever.docid_model.table.scheme, "queries_per_second": round(len(queries) / seconds, 2),
        "search_seconds": round(seconds, 3), "constraint_seconds": round(constraint, 3),
        "step_ms": [round(1e3 * timed_constraint.seconds[d] / timed_constraint.calls[d], 3) for d in steps],
        "mean_step_ms": round(1e3 * constraint / sum(timed_constraint.calls.values()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", required=True)
    parser.add_argument("--ngram-model", required=True, help="a model trained with --scheme ngram on the collection")
    parser.add_argument("--trie-model", required=True, help="a model of fixed docids (e.g. pq) on the collection")
    parser.add_argument("--beams", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--fm-index-sample", type=int, default=200, help="vocabulary tokens counted per timed fm-index step")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    collection = load_collection(args.collection)
    queries = collection.queries_of("test")

    start = time.perf_counter()
    table = build_docids(collection, DocidConfig(scheme="ngram"))
    table_seconds = time.perf_counter() - start
    spans = table.spans
    codes, _ = spans.corpus_codes()
    offsets = np.concatenate([[0], np.cumsum([len(spans.document_codes(d)) for d in range(spans.n_docs)])])
    index_seconds = timed(lambda: SpanIndex.build(codes, offsets, spans.vocab_size, spans.max_tokens), 3)
    result = {
        "collection": collection.name, "documents": len(collection.docs), "tokens": spans.n_tokens,
        "vocabulary": spans.vocab_size, "window": spans.window, "table_build_seconds": round(table_seconds, 2),
        "index_build_seconds": round(index_seconds, 3), "index_mb": round(spans.nbytes / 1e6, 2),
        "nodes": len(spans.node_key), "edges": len(spans.edge_key), "torch_threads": torch.get_num_threads(),
        "test_queries": len(queries), "models": {"ngram": args.ngram_model, "trie": args.trie_model}, "searches": {},
    }
    for beams in args.beams:
        ngram, trie = searched(args.ngram_model, queries, beams), searched(args.trie_model, queries, beams)
        result["searches"][str(beams)] = {"ngram": ngram, "trie": trie,
                                          "step_ratio": round(ngram["mean_step_ms"] / trie["mean_step_ms"], 2)}

    from fm_index import FMIndex

    text = "".join(chr(0x4E00 + c) for c in codes.tolist())  # one character per code, none of them special
    start = time.perf_counter()
    fm = FMIndex(text)
    result["fm_index_build_seconds"] = round(time.perf_counter() - start, 3)
    rng = np.random.default_rng(0)
    sample = [text[:2] + chr(0x4E00 + c) for c in rng.integers(0, spans.vocab_size, args.fm_index_sample)]
    per_count = timed(lambda: [fm.count(p) for p in sample], 5) / len(sample)
    result["fm_index_allowed_ms_per_state"] = round(per_count * spans.vocab_size * 1e3, 3)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
