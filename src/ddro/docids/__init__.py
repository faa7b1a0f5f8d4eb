"""Docid schemes and the `DocidTable` they build."""

from ddro.docids.schemes import SCHEMES, DocidConfig, build_docids
from ddro.docids.table import DocidTable

__all__ = ["SCHEMES", "DocidConfig", "DocidTable", "build_docids"]
