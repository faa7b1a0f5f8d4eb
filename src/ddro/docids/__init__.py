"""Docid schemes and the `DocidTable` they build."""

from ddro.docids.schemes import SCHEMES, DocidConfig, DocidScheme, SchemeKind, build_docids, get_scheme, register_scheme
from ddro.docids.table import DocidTable

__all__ = ["SCHEMES", "DocidConfig", "DocidScheme", "DocidTable", "SchemeKind", "build_docids", "get_scheme",
           "register_scheme"]
