"""SEAL's scoring of documents from generated spans, against its formulas written out plainly."""

import math

import numpy as np
import pytest
from ddro.span_ranking import SealScoring, SpanRanking

from test_spans import EOS, OFFSET, index_for, occurrences, random_corpus


def plain_weight(logprob, count, tokens, alpha=2.0, smoothing=5.0):
    p_given_q = math.exp(min(logprob, -1e-10))
    prior = (count + smoothing) / (tokens + smoothing)
    return max(0.0, math.log(p_given_q * (1 - prior) / (prior * (1 - p_given_q)))) ** alpha


def plain_document_score(spans_with_weights, beta=0.8):
    """W(d, q) for one document: its spans (tokens, weight), heaviest first, each scaled by its new tokens."""
    total, covered = 0.0, set()
    for tokens, weight in sorted(spans_with_weights, key=lambda sw: -sw[1]):
        if weight <= 0:
            continue
        new = len(set(tokens) - covered) / len(set(tokens))
        total += weight * (1 - beta + beta * new)
        covered |= set(tokens)
    return total


@pytest.mark.parametrize("logprob,count", [(-0.1, 1), (-2.0, 3), (-7.0, 50), (-0.0, 2), (-12.0, 1), (-1.0, 900)])
def test_span_weight_is_the_odds_ratio_against_the_corpus_frequency(logprob, count):
    got = SealScoring().span_weights(np.array([logprob]), np.array([count]), 1000)[0]
    assert got == pytest.approx(plain_weight(logprob, count, 1000), rel=1e-6, abs=1e-12)  # expm1 vs 1 - exp near p = 1


def test_a_common_span_weighs_less_than_a_rare_one_of_the_same_probability():
    weights = SealScoring().span_weights(np.array([-1.0, -1.0]), np.array([2, 400]), 1000)
    assert weights[0] > weights[1] >= 0


def test_document_scores_on_a_small_example_by_hand():
    spans = [(1, 2), (2, 3), (5,)]
    weights = np.array([4.0, 1.0, 2.0])
    documents = [np.array([0, 1]), np.array([1]), np.array([0])]
    scores = SealScoring().document_scores(spans, weights, documents)
    # Document 0: (1 2) whole, then (5) whole: 4 + 2. Document 1: (1 2), then (2 3) with one new token of two.
    assert scores == pytest.approx({0: 6.0, 1: 4.0 + 1.0 * (0.2 + 0.8 * 0.5)})


@pytest.mark.parametrize("prefixes", [False, True], ids=["whole spans", "every prefix"])
def test_ranking_matches_a_plain_implementation_on_random_corpora(prefixes):
    kinds = [ranking_matches_a_plain_implementation(seed, prefixes) for seed in range(6)]
    # Some corpus had documents SEAL scores above 0 and others it scores 0, so both orders were
    # checked (with every prefix an n-gram, a document holding a hypothesis rarely scores 0: the
    # whole-span runs check that order).
    assert any(positive and (zero or prefixes) for positive, zero in kinds), kinds


def ranking_matches_a_plain_implementation(seed, prefixes: bool):
    rng = np.random.default_rng(seed)
    vocab = 5
    documents, codes, offsets = random_corpus(rng, vocab, 10, 25)
    index = index_for(codes, offsets, vocab, 4, window=2)
    # Hypotheses as a beam search returns them: spans of the corpus then EOS, scores best first, -inf
    # after; each token's cumulative score for the prefixes (the last one is EOS's: the whole score).
    spans = []
    while len(spans) < 6:
        doc = documents[int(rng.integers(len(documents)))]
        if len(doc) >= 3:
            start, length = int(rng.integers(len(doc) - 2)), int(rng.integers(1, 4))
            span = tuple(int(c) for c in doc[start:start + length])
            if span not in spans:
                spans.append(span)
    cumulative = [np.cumsum(rng.uniform(-3.0, -0.01, size=len(span) + 1)) for span in spans]
    order = np.argsort([-c[-1] for c in cumulative], kind="stable")
    spans, cumulative = [spans[i] for i in order], [cumulative[i] for i in order]
    sequences, prefix_scores = np.full((len(spans) + 1, 5), -1), np.full((len(spans) + 1, 5), -np.inf)
    for i, (span, sums) in enumerate(zip(spans, cumulative)):
        sequences[i, : len(span) + 1] = [c + OFFSET for c in span] + [EOS]
        prefix_scores[i, : len(span) + 1] = sums
    scores = np.append([c[-1] for c in cumulative], -np.inf)
    got = SpanRanking(index, EOS).rank(sequences, scores, 10, prefix_scores if prefixes else None)

    # The n-grams: every prefix at the best probability any hypothesis gives it, or each whole span.
    ngrams = {}
    for span, sums in zip(spans, cumulative):
        for length in range(1, len(span) + 1) if prefixes else [len(span)]:
            logprob = sums[length - 1] if prefixes else sums[-1]
            ngrams[span[:length]] = max(ngrams.get(span[:length], -np.inf), logprob)
    tokens = sum(len(d) for d in documents)
    per_doc = {}
    for gram, logprob in ngrams.items():
        weight = plain_weight(logprob, len(occurrences(documents, gram)), tokens)
        for doc in {d for d, _ in occurrences(documents, gram)}:
            per_doc.setdefault(doc, []).append(([c + OFFSET for c in gram], weight))
    scored = {doc: plain_document_score(sw) for doc, sw in per_doc.items()}
    want = sorted((d for d in scored if scored[d] > 0), key=lambda d: (-scored[d], d))
    # Then the documents holding a whole hypothesis that scored 0, in the hypotheses' order.
    for span in spans:
        want += sorted({d for d, _ in occurrences(documents, span)} - set(want))
    want = want[:10]
    assert [d for d, _ in got] == want
    assert [s for _, s in got] == pytest.approx([scored.get(d, 0.0) for d in want])
    return any(scored.get(d, 0) > 0 for d in want), any(scored.get(d, 0) == 0 for d in want)


def test_no_hypothesis_ranks_no_document():
    index = index_for(np.array([0, 1]), np.array([0, 2]), 2, 3, window=2)
    assert SpanRanking(index, EOS).rank(np.full((2, 3), -1), np.full(2, -np.inf), k=10) == []
