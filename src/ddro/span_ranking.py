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

SEAL's defaults: `alpha = 2`, `beta = 0.8`, `smoothing = 5`. The spans are every prefix of every
hypothesis the search returns, each with its own probability (the sum of log-probabilities up to
its last token), as SEAL scores the partial hypotheses of its search too. The candidates are the
documents that contain a span of positive weight (all its occurrences: no cut at a number of hits,
which SEAL makes at 1,500), ties in collection order. The documents that hold a whole hypothesis
but score 0 (each of their spans no likelier given the query than in the corpus) follow, in the
hypotheses' order: SEAL drops them, but an undertrained model generates few spans of positive
weight, and these still say more than nothing. A run ranks fewer than `k` documents when fewer
contain a generated span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddro.docids.table import pad_rows


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

    def rank(self, sequences: np.ndarray, scores: np.ndarray, k: int,
             prefix_scores: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Documents for one query's hypotheses (`sequences` [beams, length], -1 after EOS; `scores`
        best first, -inf for none). With `prefix_scores` (the beam search's sums of log-probabilities
        up to each token) every prefix of a hypothesis is an n-gram with its own probability, as in
        SEAL, which scores the partial hypotheses its beam search went through; else each whole span."""
        hypotheses = [(tuple(int(t) for t in row[row >= 0] if t != self.eos), i)
                      for i, (row, s) in enumerate(zip(sequences, scores)) if np.isfinite(s)]
        if not hypotheses:
            return []
        ngrams: dict[tuple[int, ...], float] = {}
        for span, i in hypotheses:
            if prefix_scores is None:
                ngrams.setdefault(span, float(scores[i]))
                continue
            for length in range(1, len(span) + 1):
                ngrams[span[:length]] = max(ngrams.get(span[:length], -np.inf), float(prefix_scores[i, length - 1]))
        grams = list(ngrams)
        states = self.spans.walk(pad_rows(grams)).numpy()
        weights = self.scoring.span_weights(np.array([ngrams[g] for g in grams]), states[:, 1] - states[:, 0],
                                            self.spans.n_tokens)
        found: dict[tuple[int, ...], np.ndarray] = {}  # the documents of each n-gram looked up so far

        def documents(gram: tuple[int, ...], state) -> np.ndarray:
            if gram not in found:
                found[gram] = self.spans.documents_in(int(state[0]), int(state[1]))[0]
            return found[gram]

        doc_scores = self.scoring.document_scores(
            grams, weights, [documents(g, s) if w > 0 else np.zeros(0, dtype=np.int64) for g, s, w in zip(grams, states, weights)])
        ranked = sorted(doc_scores, key=lambda doc: (-doc_scores[doc], doc))
        # Then the documents that hold a whole hypothesis and scored 0, in the hypotheses' order.
        chosen = set(ranked)
        state_of = dict(zip(grams, states))
        for span, _ in hypotheses:
            for doc in documents(span, state_of[span]).tolist():
                if doc not in chosen:
                    chosen.add(doc)
                    ranked.append(doc)
            if len(ranked) >= k:
                break
        return [(doc, doc_scores.get(doc, 0.0)) for doc in ranked[:k]]
