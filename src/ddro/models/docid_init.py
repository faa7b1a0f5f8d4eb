"""Docid token rows that start from the encoder's geometry (`--docid-init centroids`, issue 17's
second lever; not yet measured, off by default).

Computed docids quantize document embeddings: a PQ token stands for a centroid of one block of
dimensions, an RQ token for a centroid of one level's residual, and a document's embedding is
about the sum of its tokens' vectors placed so (`code_vectors`). When the decoder's width is
the embeddings', those vectors can be the docid tokens' rows of the output head and of the
decoder's input embedding: a decoder state near a query's embedding then scores each docid
token by its share of the inner product, the score dense retrieval ranks by. Random rows
start from nothing; SFT refines these.
"""

from __future__ import annotations

import numpy as np

from ddro.errors import DdroError

INITS = ("centroids",)
# The docid schemes whose tokens stand for centroids.
SCHEMES = ("pq", "rq")


def check_scheme(table) -> None:
    """One line unless `table`'s docids are codes of centroids (`SCHEMES`)."""
    if table.scheme not in SCHEMES:
        raise DdroError(f"--docid-init centroids needs {' or '.join(SCHEMES)} docids, not {table.scheme}")


def code_vectors(table, embeddings: np.ndarray) -> np.ndarray:
    """`[len(table.vocab), dims]`: for each PQ or RQ token, the mean of what it encodes over the
    documents that have it (PQ: their block of dimensions, in that block, zero elsewhere; RQ: their
    residual after the earlier levels' vectors), so that a document's tokens' vectors sum to its
    quantized embedding. Other tokens (`<dup_k>` suffixes, unused codes) get zero rows."""
    from ddro.docids.pq import subspaces

    check_scheme(table)
    embeddings = np.asarray(embeddings, dtype=np.float64)
    vectors = np.zeros((len(table.vocab), embeddings.shape[1]))

    def token_means(tokens: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per vocabulary entry, the mean of `values` over the documents whose code is that token
        (zero for the others: each position has tokens of its own, so the positions' means add up)."""
        sums = np.zeros((len(table.vocab), values.shape[1]))
        np.add.at(sums, tokens, values)
        return sums / np.maximum(np.bincount(tokens, minlength=len(table.vocab)), 1)[:, None]

    if table.scheme == "pq":
        for position, dims in enumerate(subspaces(embeddings.shape[1], table.options["pq_m"])):
            vectors[:, dims] += token_means(table.codes[:, position], embeddings[:, dims])
    else:  # rq
        residual = embeddings.copy()
        for position in range(table.options["rq_levels"]):
            tokens = table.codes[:, position]
            vectors += token_means(tokens, residual)
            residual -= vectors[tokens]
    return vectors.astype(np.float32)


def init_docid_rows(docid_model, vectors: np.ndarray) -> int:
    """Copy `vectors` (`code_vectors`) into the docid tokens' rows of the decoder's input embedding
    and output head, rescaled to the rows' present mean norm (the logit scale the preset trains
    from). Returns the rows set. The decoder's width must be the vectors'."""
    import torch

    model = docid_model.model
    rows = [model.get_decoder().get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None and head.weight is not rows[0]:
        rows.append(head.weight)
    if rows[0].shape[1] != vectors.shape[1]:
        raise DdroError(f"--docid-init centroids: the decoder is {rows[0].shape[1]} wide and the docid embeddings "
                        f"{vectors.shape[1]}; it needs the same width (the cpu preset's decoder has it)")
    nonzero = np.linalg.norm(vectors, axis=1) > 0
    token_ids = torch.as_tensor(docid_model.docid_token_ids[nonzero])
    with torch.no_grad():
        for weight in rows:
            target = weight[token_ids].norm(dim=1).mean()
            chosen = torch.as_tensor(vectors[nonzero], dtype=weight.dtype, device=weight.device)
            weight[token_ids] = chosen * (target / chosen.norm(dim=1).mean())
    return int(nonzero.sum())
