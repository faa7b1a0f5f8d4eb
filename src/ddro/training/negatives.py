"""Training pairs for DDRO: (query, relevant document, non-relevant document).

Negatives come from a ranking of the collection for each query, BM25's by default (the paper:
BM25 top 1,000), or any TREC / MS MARCO run file a user gives. They are drawn from rank bands
(default 1-100, 101-500, 501-1000) in given proportions, `per_query` per query, never a relevant
document and never a document whose docid equals a relevant document's docid (a collision would
make the pair contradict itself). Each negative is paired with the query's relevant documents in
turn; with `per_positive`, `per_query` negatives are drawn for each relevant document (all
distinct), so a query with many judged documents uses every one of them.
Where a band holds too few candidates, the missing draws are filled with the best-ranked
candidates left in any band. Documents of a run file that the collection lacks are ignored.
Drawing is seeded per query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ddro.bm25 import DEFAULT_STEMMER
from ddro.errors import DdroError, OptionError


class Pair(NamedTuple):
    query_id: str
    query: str
    chosen: int  # document index
    rejected: int


@dataclass
class NegativeConfig:
    per_query: int = field(default=8, metadata={"help": "negatives per query (paper: 16 MS MARCO, 8 NQ)"})
    bands: tuple = ((1, 100), (101, 500), (501, 1000))
    proportions: tuple = (1.0, 1.0, 1.0)
    per_positive: bool = False
    seed: int = 0

    @property
    def depth(self) -> int:
        return max(end for _, end in self.bands)

    def counts(self, total: int | None = None) -> list[int]:
        """Draws per band: `total` (default `per_query`) split by the proportions (largest remainder)."""
        total = self.per_query if total is None else total
        weights = np.asarray(self.proportions, dtype=float)
        if len(weights) != len(self.bands) or (weights < 0).any() or weights.sum() <= 0:
            raise DdroError(f"band proportions {self.proportions} do not fit bands {self.bands}")
        exact = total * weights / weights.sum()
        counts = np.floor(exact).astype(int)
        for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
            counts[i] += 1
        return counts.tolist()


def parse_bands(text: str) -> tuple:
    """`"1-100,101-500,501-1000"` -> `((1, 100), (101, 500), (501, 1000))`."""
    try:
        bands = tuple(tuple(int(x) for x in part.split("-")) for part in text.split(","))
    except ValueError:
        raise OptionError("bands", f"{text!r}: expected ranges like 1-100,101-500,501-1000") from None
    if any(len(b) != 2 or b[0] < 1 or b[1] < b[0] for b in bands):
        raise OptionError("bands", f"{text!r}: each band is FIRST-LAST with 1 <= FIRST <= LAST")
    return bands


def draw_negatives(ranking: list[str], excluded: set[str], config: NegativeConfig, rng: np.random.Generator,
                   total: int | None = None) -> list[str]:
    """`total` (default `per_query`) negatives for one query from its ranking (doc ids, best first)."""
    bands = [[d for d in ranking[lo - 1:hi] if d not in excluded] for lo, hi in config.bands]
    wanted = config.counts(total)
    chosen: list[str] = []
    shortfall = 0
    for i, (band, n) in enumerate(zip(bands, wanted)):
        take = min(len(band), n)
        picks = set(rng.choice(len(band), size=take, replace=False).tolist()) if take else set()
        chosen += [band[j] for j in sorted(picks)]
        bands[i] = [d for j, d in enumerate(band) if j not in picks]
        shortfall += n - take
    leftovers = [d for band in bands for d in band]  # bands in rank order: best-ranked first
    return chosen + leftovers[:shortfall]


def make_pairs(queries, positives: dict[str, list[int]], rankings: dict[str, list[str]], table, config: NegativeConfig) -> list[Pair]:
    """Pairs for `queries` given their relevant document indices and a ranking per query."""
    index = {doc_id: i for i, doc_id in enumerate(table.doc_ids)}
    pairs: list[Pair] = []
    for query in queries:
        relevant = positives.get(query.query_id, [])
        if not relevant:
            continue
        relevant_docids = {table.docid(i) for i in relevant}
        excluded = {table.doc_ids[i] for i in relevant}
        ranking = [d for d in rankings.get(query.query_id, []) if d in index]
        excluded |= {d for d in ranking if table.docid(index[d]) in relevant_docids}
        rng = np.random.default_rng([config.seed, _stable_hash(query.query_id)])
        total = config.per_query * (len(relevant) if config.per_positive else 1)
        negatives = draw_negatives(ranking, excluded, config, rng, total)
        for k, doc_id in enumerate(negatives):
            pairs.append(Pair(query.query_id, query.text, relevant[k % len(relevant)], index[doc_id]))
    return pairs


def _stable_hash(text: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "little")


def bm25_rankings(collection, groups: list[tuple[list, int]], stemmer: str = DEFAULT_STEMMER) -> dict[str, list[str]]:
    """BM25 rankings of each `(queries, depth)` group, from one index of the collection
    (`stemmer`: `ddro.bm25.BM25Retriever`'s)."""
    from ddro.bm25 import BM25Retriever

    retriever = BM25Retriever(stemmer=stemmer).index(collection.docs)
    rankings: dict[str, list[str]] = {}
    for queries, depth in groups:
        run = retriever.search(queries, k=min(depth, len(collection.docs))) if queries else {}
        rankings |= {qid: [doc_id for doc_id, _ in ranked] for qid, ranked in run.items()}
    return rankings


def run_file_rankings(path) -> dict[str, list[str]]:
    """Rankings from a TREC run (`qid Q0 doc rank score tag`) or an MS MARCO run (`qid doc rank`),
    plain or `.gz`."""
    from pathlib import Path

    from ddro.collections.textio import read_lines
    from ddro.runs import read_trec_run

    path = Path(path)
    first = next((line.split() for _, line in read_lines(path) if line.strip()), []) if path.is_file() else []
    if len(first) == 3:
        rankings: dict[str, list[tuple[int, str]]] = {}
        for line_no, line in read_lines(path):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3 or not parts[2].isdigit():
                raise DdroError(f"{path}:{line_no}: expected MS MARCO run 'qid docid rank'")
            rankings.setdefault(parts[0], []).append((int(parts[2]), parts[1]))
        return {q: [d for _, d in sorted(v)] for q, v in rankings.items()}
    return {qid: [doc_id for doc_id, _ in ranked] for qid, ranked in read_trec_run(path).items()}
