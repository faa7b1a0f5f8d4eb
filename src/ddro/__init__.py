"""ddro: generative document retrieval with Direct Document Relevance Optimization.

The top-level package stays light: heavy modules (torch, transformers) are imported only by the
parts that need them.
"""

__version__ = "0.1.0"

from ddro.errors import DdroError

__all__ = ["DdroError", "__version__"]
