"""`ddro serve`: a trained model and its collection behind the HTTP service, on uvicorn."""

from __future__ import annotations

from ddro.errors import DdroError


def load_app(model: str, collection_src: str, device: str | None = None, dtype: str = "fp32",
             precision: str | None = None, **options):
    """The app for a model folder and the collection it was trained on (`options`: `create_app`'s)."""
    from ddro.collections import load_collection
    from ddro.devices import torch_device
    from ddro.recipes import check_documents
    from ddro.retrieval import GenerativeRetriever
    from ddro.serving.app import create_app

    collection = load_collection(collection_src)
    retriever = GenerativeRetriever.load(model, torch_device(device), dtype, precision)
    check_documents(retriever.docid_model.table.doc_ids, collection, model, collection_src)
    return create_app(retriever, {d.doc_id: d for d in collection.docs}, **options)


def serve(app, host: str, port: int, graceful_seconds: float = 30.0) -> None:
    """Run until SIGTERM or Ctrl-C; requests in flight then get up to `graceful_seconds` to finish."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=graceful_seconds)


def require_serving_packages() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise DdroError("ddro serve needs the serve extra: pip install 'ddro[serve]'") from None
