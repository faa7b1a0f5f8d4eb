"""Test collections: one `Collection` type, read from several source formats.

`load_collection(src)` accepts a folder (BEIR layout, MS MARCO-style TSVs, or the raw Cranfield,
NPL or LISA files, detected from the files present) or `irds:<id>`.
"""

from __future__ import annotations

from pathlib import Path

from ddro.collections.base import DEFAULT_TEST_FRACTION, Collection, Document, PseudoQuery, Qrel, Query, Split
from ddro.collections.builder import CollectionBuilder
from ddro.errors import DdroError

__all__ = ["Collection", "Document", "Query", "PseudoQuery", "Qrel", "Split", "load_collection", "load_documents",
           "DEFAULT_TEST_FRACTION"]


def load_collection(src: str | Path, test_fraction: float | None = None) -> Collection:
    """Read a collection; `test_fraction` overrides the source's own split (None: keep it)."""
    from ddro.collections import beir, classic, irds, msmarco

    src_str = str(src)
    if src_str.startswith("irds:"):
        dataset_id = src_str[len("irds:"):]
        builder = CollectionBuilder(dataset_id, src_str)
        irds.read_irds(dataset_id, builder)
        return builder.build(test_fraction)
    folder = Path(src)
    if not folder.exists():
        raise DdroError(f"{folder}: collection folder not found")
    if not folder.is_dir():
        raise DdroError(f"{folder}: a collection is a folder (or irds:<id>), not a file")
    builder = CollectionBuilder(folder.resolve().name, str(folder))
    given = None
    if classic.is_cranfield(folder):
        builder.name = "cranfield"
        classic.read_cranfield(folder, builder)
    elif classic.is_npl(folder):
        builder.name = "npl"
        classic.read_npl(folder, builder)
    elif classic.is_lisa(folder):
        builder.name = "lisa"
        classic.read_lisa(folder, builder)
    elif beir.is_beir(folder):
        given = beir.read_beir(folder, builder, test_fraction)
    elif msmarco.is_msmarco(folder):
        given = msmarco.read_msmarco(folder, builder)
    else:
        raise DdroError(
            f"{folder}: no known collection layout (expected corpus.jsonl, docs.tsv/collection.tsv, "
            "or the raw Cranfield/NPL/LISA files)"
        )
    return builder.build(test_fraction, given)


def load_documents(src: str | Path) -> list[Document]:
    """Documents alone: a corpus file (BEIR `*.jsonl` records, or MS MARCO-style `*.tsv` lines, each
    also gzipped) or the documents of anything `load_collection` reads."""
    from ddro.collections import beir, msmarco
    from ddro.collections.textio import plain_name

    path = Path(src)
    if str(src).startswith("irds:") or path.is_dir():
        return load_collection(src).docs
    if not path.is_file():
        raise DdroError(f"{path}: documents file not found")
    builder = CollectionBuilder(path.name, str(path))
    name = plain_name(path)
    if name.endswith(".jsonl"):
        beir.read_corpus(path, builder)
    elif name.endswith(".tsv"):
        msmarco.read_docs_tsv(path, builder)
    else:
        raise DdroError(f"{path}: expected a .jsonl corpus (BEIR records) or a .tsv documents file, or a collection folder")
    if not builder.docs:
        raise DdroError(f"{path}: no documents")
    return builder.docs
