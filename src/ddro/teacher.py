"""Teachers: rankers that need no training queries, whose rankings label queries nobody judged.

A collection without judged training queries still has good rankers: BM25, exact dense retrieval
with the docid encoder's embeddings (`ddro.dense`), and their reciprocal-rank fusion. DDRO reads a
teacher's ranking of each pseudo-query (`DDROConfig.teacher`) to order its pairs over the whole
collection, where otherwise the pseudo-query's own document is the only thing known about it.
"""

from __future__ import annotations

from ddro.bm25 import DEFAULT_STEMMER
from ddro.errors import OptionError
from ddro.runs import fuse_rrf

TEACHERS = ("bm25", "dense", "bm25+dense")


def check_teacher(name: str, option: str = "teacher") -> None:
    if name not in TEACHERS:
        raise OptionError(option, f"{name!r}: choose from {', '.join(TEACHERS)}")


class Teacher:
    """Ranks queries over a collection by BM25, by dense retrieval with `encoder` (a
    `docids.encoders.get_encoder` spec), or by both fused (`bm25+dense`). `option` names the setting
    an unknown `name` came from."""

    def __init__(self, name: str, collection, encoder: str = "minilm", stemmer: str = DEFAULT_STEMMER,
                 seed: int = 0, cache_dir: str | None = None, option: str = "teacher"):
        check_teacher(name, option)
        self.retrievers = []
        if name in ("bm25", "bm25+dense"):
            from ddro.bm25 import BM25Retriever

            self.retrievers.append(BM25Retriever(stemmer=stemmer).index(collection.docs))
        if name in ("dense", "bm25+dense"):
            from ddro.dense import encoder_retriever

            self.retrievers.append(encoder_retriever(collection, encoder, seed, cache_dir))
        self.documents = len(collection.docs)

    @classmethod
    def for_docids(cls, name: str, collection, table, stemmer: str = DEFAULT_STEMMER,
                   option: str = "teacher") -> "Teacher":
        """The teacher whose dense part is the encoder `table`'s docids were computed from (MiniLM
        for docids made from text, which name none)."""
        return cls(name, collection, encoder=table.options.get("encoder", "minilm"), stemmer=stemmer,
                   seed=table.options.get("seed", 0), option=option)

    def rankings(self, queries, depth: int) -> dict[str, list[str]]:
        """Each query's top `depth` doc ids, best first."""
        queries = list(queries)
        if not queries:
            return {}
        depth = min(depth, self.documents)
        runs = [retriever.search(queries, k=depth) for retriever in self.retrievers]
        run = runs[0] if len(runs) == 1 else fuse_rrf(runs, k=depth)
        return {qid: [doc_id for doc_id, _ in ranked] for qid, ranked in run.items()}
