"""Documents ranked from generated spans: SEAL's intersective scoring (Bevilacqua et al. 2022).

A beam search under a `SpanIndex` returns spans `n` with their log-probabilities `log p(n | q)`
(the span's tokens and EOS). Each span is weighed against how common it is in the corpus:

    w(n, q) = max(0, log [p(n | q) (1 - P(n))] - log [P(n) (1 - p(n | q))]) ** alpha,
    P(n) = (F(n) + smoothing) / (T + smoothing),

with `F(n)` the span's occurrences and `T` the corpus' tokens: a span that occurs everywhere says
little, however likely the model finds it. A document's score sums the weights of the distinct
generated spans it contains, from the heaviest down, each scaled by how many tokens it adds to
those already counted:

    W(d, q) = sum_i w(n_i, q) * (1 - beta + beta * |set(n_i) - (set(n_1) | ... | set(n_{i-1}))| / |set(n_i)|).

SEAL's defaults: `alpha = 2`, `beta = 0.8`, `smoothing = 5`. The candidates are the documents that
contain at least one generated span (all its occurrences: no cut at a number of hits, which SEAL
makes at 1,500). Those that SEAL scores 0, because each of their spans is no likelier given the
query than in the corpus, follow the others, by their likeliest span's log-probability (SEAL
drops them; an undertrained model generates few spans of positive weight, and these still say
more than nothing); then collection order. A run ranks fewer than `k` documents when fewer
contain a generated span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SealScoring:
    alpha: float = 2.0
    beta: float = 0.8
    smoothing: float = 5.0

    def span_weights(self, logprobs: np.ndarray, counts: np.ndarray, corpus_tokens: int) -> np.ndarray:
        """`w(n, q)` of spans with log-probabilities `logprobs` occurring `counts` times."""
        conditional = np.minimum(np.asarray(logprobs, dtype=np.float64), -1e-10)
        prior = np.log((np.asarray(counts, dtype=np.float64) + self.smoothing) / (corpus_tokens + self.smoothing))
        odds = (conditional + np.log(-np.expm1(prior))) - (prior + np.log(-np.expm1(conditional)))
        return np.maximum(odds, 0.0) ** self.alpha

    def document_scores(self, spans: list[tuple[int, ...]], weights: np.ndarray, documents: list[np.ndarray]) -> dict:
        """`{document: W(d, q)}` from each span's tokens, weight and the documents holding it."""
        order = sorted(range(len(spans)), key=lambda i: -weights[i])  # stable: ties keep the search's order
        covered: dict[int, set] = {}
        scores: dict[int, float] = {}
        for i in order:
            if weights[i] <= 0:
                break
            tokens = set(spans[i])
            for doc in documents[i].tolist():
                seen = covered.setdefault(doc, set())
                new = len(tokens - seen) / len(tokens)
                scores[doc] = scores.get(doc, 0.0) + weights[i] * (1 - self.beta + self.beta * new)
                seen |= tokens
        return scores


class SpanRanking:
    """Turns a query's generated spans into ranked documents (indices, with their scores)."""

    def __init__(self, spans, eos_token_id: int, scoring: SealScoring | None = None):
        self.spans, self.eos, self.scoring = spans, eos_token_id, scoring or SealScoring()

    def rank(self, sequences: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
        import torch

        found = [(tuple(int(t) for t in row[row >= 0] if t != self.eos), float(s))
                 for row, s in zip(sequences, scores) if np.isfinite(s)]
        if not found:
            return []
        width = max(len(span) for span, _ in found)
        padded = np.full((len(found), width), -1, dtype=np.int64)
        for i, (span, _) in enumerate(found):
            padded[i, : len(span)] = span
        states = self.spans.walk(torch.from_numpy(padded)).numpy()
        logprobs = np.array([s for _, s in found])
        weights = self.scoring.span_weights(logprobs, states[:, 1] - states[:, 0], self.spans.n_tokens)
        documents = [self.spans.documents_in(int(lo), int(hi))[0] for lo, hi in states]
        doc_scores = self.scoring.document_scores([span for span, _ in found], weights, documents)
        best = {}  # each candidate's most likely span (the hypotheses come best first)
        for docs, logprob in zip(documents, logprobs):
            for doc in docs.tolist():
                best.setdefault(doc, logprob)
        ranked = sorted(best, key=lambda doc: (-doc_scores.get(doc, 0.0), -best[doc], doc))
        return [(doc, doc_scores.get(doc, 0.0)) for doc in ranked[:k]]
