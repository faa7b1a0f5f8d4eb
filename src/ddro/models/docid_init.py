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


def code_vectors(table, embeddings: np.ndarray) -> np.ndarray:
    """`[len(table.vocab), dims]`: for each PQ or RQ token, the mean of what it encodes over the
    documents that have it (PQ: their block of dimensions, in that block, zero elsewhere; RQ: their
    residual after the earlier levels' vectors), so that a document's tokens' vectors sum to its
    quantized embedding. Other tokens (`<dup_k>` suffixes, unused codes) get zero rows."""
    from ddro.docids.pq import subspaces

    embeddings = np.asarray(embeddings, dtype=np.float64)
    vectors = np.zeros((len(table.vocab), embeddings.shape[1]))
    counts = np.zeros(len(table.vocab))
    if table.scheme == "pq":
        for position, dims in enumerate(subspaces(embeddings.shape[1], table.options["pq_m"])):
            tokens = table.codes[:, position]
            block = np.zeros((len(table.vocab), len(dims)))
            np.add.at(block, tokens, embeddings[:, dims])
            np.add.at(counts, tokens, 1)
            vectors[:, dims] += block
    elif table.scheme == "rq":
        residual = embeddings.copy()
        for position in range(table.options["rq_levels"]):
            tokens = table.codes[:, position]
            level = np.zeros_like(vectors)
            np.add.at(level, tokens, residual)
            level_counts = np.bincount(tokens, minlength=len(table.vocab))
            used = level_counts > 0
            vectors[used] = level[used] / level_counts[used, None]
            residual -= vectors[tokens]
        return vectors.astype(np.float32)
    else:
        raise DdroError(f"--docid-init centroids needs pq or rq docids, not {table.scheme}")
    used = counts > 0
    vectors[used] /= counts[used, None]
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
