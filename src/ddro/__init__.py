"""ddro: generative document retrieval with Direct Document Relevance Optimization.

The top-level package stays light: the objects below are imported on first use, so
`import ddro` loads neither torch nor transformers.
"""

from importlib import import_module

from ddro.errors import DdroError

__version__ = "0.1.0"

# name -> module that defines it
_LAZY = {
    "load_collection": "ddro.collections",
    "Collection": "ddro.collections",
    "DocidConfig": "ddro.docids",
    "DocidTable": "ddro.docids",
    "build_docids": "ddro.docids",
    "DocidTrie": "ddro.decoding",
    "beam_search": "ddro.decoding.beam",
    "DocidModel": "ddro.models",
    "GenerativeRetriever": "ddro.retrieval",
    "BM25Retriever": "ddro.bm25",
    "evaluate": "ddro.evaluation",
    "ddro_loss": "ddro.training.ddro_loss",
}

__all__ = ["DdroError", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ddro' has no attribute {name!r}")
