"""A trained ddro model as a PyTerrier transformer (extra `pyterrier`).

    import pyterrier as pt
    from ddro.pyterrier import DDRORetriever

    ddro = DDRORetriever("runs/cranfield/model-ddro", k=100)
    pt.Experiment([ddro, bm25], topics, qrels, eval_metrics=["recip_rank"])

`DDRORetriever` maps a query frame (`qid`, `query`) to a result frame (`qid`, `query`, `docno`,
`score`, `rank`, rank 0 first as PyTerrier numbers them), by the same constrained beam search as
`ddro search`. It runs without Java: PyTerrier 1.x needs none for transformers of its own.
"""

from __future__ import annotations

from ddro.errors import DdroError

try:
    import pandas as pd
    import pyterrier as pt
except ImportError:  # pragma: no cover - the message is the point
    raise DdroError("ddro.pyterrier needs the pyterrier extra: pip install 'ddro[pyterrier]'") from None


class DDRORetriever(pt.Transformer):
    """Constrained beam search over a trained model's docids (`ddro.retrieval.GenerativeRetriever`)."""

    def __init__(self, model_dir, k: int = 100, num_beams: int | None = None, batch_size: int | None = None,
                 device: str | None = None, dtype: str = "fp32", precision: str | None = None):
        from ddro.devices import torch_device
        from ddro.retrieval import DEFAULT_SEARCH_BATCH, GenerativeRetriever

        self.retriever = GenerativeRetriever.load(model_dir, torch_device(device), dtype, precision)
        self.k, self.num_beams = k, max(num_beams or k, k)
        self.batch_size = batch_size or DEFAULT_SEARCH_BATCH
        self.model_dir = str(model_dir)

    def __repr__(self) -> str:
        return f"DDRORetriever({self.model_dir!r}, k={self.k}, num_beams={self.num_beams})"

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        from ddro.collections.base import Query

        missing = {"qid", "query"} - set(topics.columns)
        if missing:
            raise DdroError(f"DDRORetriever: the query frame has no {', '.join(sorted(missing))} column")
        queries = [Query(str(qid), str(text)) for qid, text in zip(topics["qid"], topics["query"])]
        run = self.retriever.search(queries, k=self.k, num_beams=self.num_beams, batch_size=self.batch_size,
                                    progress=False)
        rows = [(query.query_id, query.text, doc_id, score, rank)
                for query in queries for rank, (doc_id, score) in enumerate(run[query.query_id])]
        return pd.DataFrame(rows, columns=["qid", "query", "docno", "score", "rank"])
