"""`GenerativeRetriever`: constrained beam search from queries to ranked documents.

The score of a docid is its sequence log-probability under the model (the sum of its tokens'
log-probabilities, `length_penalty=0`), the quantity DDRO's loss also uses. A docid shared by
several documents (collision policy `share`) stands for all of them, in collection order.
N-gram docids rank documents by the spans they contain instead (`ddro.span_ranking`).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ddro.batching import label_batch
from ddro.decoding.trie import DocidTrie
from ddro.errors import DdroError
from ddro.precision import autocast
from ddro.runs import DEFAULT_K
from ddro.scoring import docid_logprobs, query_states

# Docids generated per query, unless told otherwise.
DEFAULT_BEAMS = 100
# Queries per beam-search call, unless told otherwise.
DEFAULT_SEARCH_BATCH = 8


def search_in_shards(search, queries, batch_size: int = DEFAULT_SEARCH_BATCH, **options):
    """`search(queries, batch_size=..., **options)` (a `GenerativeRetriever.search`), split under a
    launcher: each process searches its share in whole batches, so every query is searched in the
    batch it would be in one process, and every process gets the whole run (`ddro.distributed`)."""
    from ddro.distributed import gather_shards

    return gather_shards(queries, lambda part: search(part, batch_size=batch_size, **options), unit=batch_size)


def beam_width(beams: int, k: int, at_least_k: bool) -> int:
    """The beam to search with: widened to `k` with `at_least_k`, since a beam of B ranks at most B documents."""
    return max(beams, k if at_least_k else 1)


@contextmanager
def _inference(docid_model):
    """Dropout off and the model's precision while searching or scoring, the caller's mode restored afterwards."""
    model = docid_model.model
    was_training = model.training
    model.eval()
    try:
        with autocast(docid_model.precision, next(model.parameters()).device):
            yield
    finally:
        model.train(was_training)


class DocidRanking:
    """Fixed docids: each generated docid ranks its documents (several under `share`), in collection order."""

    def __init__(self, sequences: np.ndarray):
        self._docs_of: dict[tuple[int, ...], list[int]] = {}
        for i, row in enumerate(sequences):
            self._docs_of.setdefault(tuple(int(t) for t in row[row >= 0]), []).append(i)

    def documents(self, tokens) -> list[int]:
        return self._docs_of.get(tuple(int(t) for t in tokens), [])

    def rank(self, sequences: np.ndarray, scores: np.ndarray, k: int, prefix_scores=None) -> list[tuple[int, float]]:
        """Each docid's documents in the hypotheses' order (`prefix_scores` is not used: a docid is whole)."""
        ranked: list[tuple[int, float]] = []
        seen: set[int] = set()
        for tokens, score in zip(sequences, scores):
            if not np.isfinite(score):
                break
            for doc in self.documents(tokens[tokens >= 0]):
                if doc not in seen:
                    seen.add(doc)
                    ranked.append((doc, float(score)))
        return ranked[:k]


class GenerativeRetriever:
    """Constrained beam search, then documents ranked from what it generated: under a `DocidTrie`
    of the documents' docids, or, for n-gram docids, under the corpus' `SpanIndex` with the spans'
    documents scored as SEAL does (`ddro.span_ranking`)."""

    def __init__(self, docid_model):
        self.docid_model = docid_model
        self.sequences = docid_model.docid_sequences()
        spans = docid_model.table.spans
        if spans is not None:
            from ddro.span_ranking import SpanRanking

            self.constraint = spans.for_decoder(docid_model.docid_token_ids, docid_model.eos_token_id,
                                                docid_model.decoder_vocab_size)
            self.max_new_tokens = spans.max_tokens + 1
            self.ranking = SpanRanking(spans, docid_model.eos_token_id)
        else:
            self.constraint = DocidTrie(self.sequences, docid_model.decoder_vocab_size)
            self.max_new_tokens = int((self.sequences >= 0).sum(1).max())
            self.ranking = DocidRanking(self.sequences)

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu", dtype: str = "fp32",
             precision: str | None = None) -> "GenerativeRetriever":
        """A retriever over a saved model folder; `dtype="bf16"` casts the weights, which searches
        faster on CPUs with AVX-512 BF16 (docs/decoding.md), with the same first result for most
        queries; `precision` is the autocast of the arithmetic (`ddro.precision`; default:
        the one the model records, i.e. was trained with)."""
        from ddro.models.docid_model import DocidModel
        from ddro.precision import check_precision

        docid_model = DocidModel.load(folder, device, dtype)
        if precision is not None:
            docid_model.precision = check_precision(precision)
        return cls(docid_model)

    @property
    def doc_ids(self) -> list[str]:
        return self.docid_model.table.doc_ids

    def docs_for(self, tokens) -> list[str]:
        """Document ids for a generated decoder docid (docid tokens then EOS); fixed docids only."""
        return [self.doc_ids[i] for i in self.ranking.documents(tokens)]

    @torch.inference_mode()
    def search(self, queries, k: int = DEFAULT_K, num_beams: int = DEFAULT_BEAMS, batch_size: int = DEFAULT_SEARCH_BATCH, progress: bool = True,
               length_penalty: float = 0.0):
        """Rank documents for each query: `{query_id: [(doc_id, score), ...]}`, best first.

        `num_beams` docids are generated per query (at least `k`) by `ddro.decoding.beam_search`;
        with the `share` policy a docid may add several documents, so a run can hold more than
        `num_beams` documents before the cut at `k`. `length_penalty=0` ranks by the docid's
        sequence log-probability; other values divide it by `length ** length_penalty`. With
        n-gram docids the beams are spans, and a document's score is SEAL's sum over the spans it holds.
        """
        from ddro.decoding.beam import beam_search

        model = self.docid_model.model
        device = next(model.parameters()).device
        run: dict[str, list[tuple[str, float]]] = {}
        batches = range(0, len(queries), batch_size)
        for start in tqdm(batches, desc="searching", unit="batch", disable=not progress):
            batch = queries[start:start + batch_size]
            inputs = {name: t.to(device) for name, t in self.docid_model.encode([q.text for q in batch]).items()}
            with _inference(self.docid_model):
                found = beam_search(model, inputs, num_beams=num_beams, max_new_tokens=self.max_new_tokens,
                                    decoder_start_token_id=self.docid_model.decoder_start_token_id,
                                    trie=self.constraint, length_penalty=length_penalty)
            sequences, scores = found.sequences.cpu().numpy(), found.scores.cpu().numpy()
            prefixes = found.prefix_scores.cpu().numpy()
            for q, query in enumerate(batch):
                ranked = self.ranking.rank(sequences[q], scores[q], k, prefixes[q])
                run[query.query_id] = [(self.doc_ids[doc], score) for doc, score in ranked]
        return run

    @torch.inference_mode()
    def score_all(self, queries, chunk_size: int = 512, progress: bool = True) -> np.ndarray:
        """Exhaustive scorer: `log p(d | q)` of every docid for every query, `[queries, documents]`.

        The exact ranking a beam search approaches; affordable for small corpora (one decoder
        pass per docid per query). N-gram docids have no such ranking: a document is every span.
        """
        if self.docid_model.table.spans is not None:
            raise DdroError("exhaustive scoring needs one docid per document; n-gram docids (scheme ngram) are "
                            "any span, so search them with the beam search")
        model = self.docid_model.model
        device = next(model.parameters()).device
        labels = label_batch(torch.from_numpy(self.sequences), range(len(self.sequences))).to(device)
        out = np.zeros((len(queries), len(self.sequences)), dtype=np.float32)
        with _inference(self.docid_model):
            for q, query in enumerate(tqdm(queries, desc="scoring every docid", unit="query", disable=not progress)):
                inputs = {name: t.to(device) for name, t in self.docid_model.encode([query.text]).items()}
                states = query_states(model, inputs["input_ids"], inputs["attention_mask"])
                for start in range(0, len(labels), chunk_size):
                    chunk = labels[start:start + chunk_size]
                    rows = torch.zeros(len(chunk), dtype=torch.long, device=device)
                    out[q, start:start + len(chunk)] = docid_logprobs(
                        model, chunk, states, inputs["attention_mask"], rows).cpu().numpy()
        return out

    def exhaustive_search(self, queries, k: int = DEFAULT_K, progress: bool = True):
        """The run of `score_all`: every document ranked by its docid's log-probability."""
        scores = self.score_all(queries, progress=progress)
        run = {}
        for q, query in enumerate(queries):
            order = np.argsort(-scores[q], kind="stable")[:k]
            run[query.query_id] = [(self.doc_ids[i], float(scores[q, i])) for i in order]
        return run

