"""`irds:<id>` sources through ir_datasets (an optional dependency)."""

from __future__ import annotations

from ddro.collections.base import Document, Qrel, Query
from ddro.collections.builder import CollectionBuilder
from ddro.errors import DdroError, at


def read_irds(dataset_id: str, builder: CollectionBuilder) -> None:
    try:
        import ir_datasets
    except ImportError:
        raise DdroError(f"irds:{dataset_id}: ir_datasets is not installed (pip install 'ddro[irds]')") from None
    try:
        dataset = ir_datasets.load(dataset_id)
    except KeyError:
        raise DdroError(f"irds:{dataset_id}: ir_datasets knows no dataset {dataset_id!r}") from None
    for needed in ("docs", "queries", "qrels"):
        if not getattr(dataset, f"has_{needed}")():
            raise DdroError(f"irds:{dataset_id}: the dataset has no {needed}")
    # ir_datasets gives each collection as it is, empty documents included (Cranfield has two).
    builder.keeps_empty_documents = True
    try:
        # Records are located as lines are, `irds:<id> docs:<n>`, so that --lenient counts per part.
        for i, doc in enumerate(dataset.docs_iter(), start=1):
            builder.add_doc(
                Document(doc.doc_id, getattr(doc, "title", "") or "", _doc_text(doc), getattr(doc, "url", "") or ""),
                at(f"irds:{dataset_id} docs", i),
            )
        for i, query in enumerate(dataset.queries_iter(), start=1):
            builder.add_query(Query(query.query_id, _query_text(query)), at(f"irds:{dataset_id} queries", i))
        for i, qrel in enumerate(dataset.qrels_iter(), start=1):
            builder.add_qrel(Qrel(qrel.query_id, qrel.doc_id, int(qrel.relevance)), at(f"irds:{dataset_id} qrels", i))
    except DdroError:
        raise
    except Exception as exc:  # download or cache failures: ir_datasets raises many kinds
        raise DdroError(
            f"irds:{dataset_id}: data not available ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}); "
            "it needs internet access or a local ir_datasets cache"
        ) from None


def _doc_text(doc) -> str:
    for name in ("text", "body", "abstract"):
        value = getattr(doc, name, None)
        if value:
            return value
    return getattr(doc, "default_text", lambda: "")()


def _query_text(query) -> str:
    for name in ("text", "title", "query"):
        value = getattr(query, name, None)
        if value:
            return value
    return getattr(query, "default_text", lambda: "")()
