"""Effectiveness measures, paired significance tests and the evaluation report.

Measures come from ir_measures only, so ddro's numbers are the numbers other toolkits report.
Two things are handled here rather than left to it: every test query counts (a query the system
returned nothing for scores 0 instead of disappearing from the mean), and the order evaluated
is the order the system gave (ties in score are not re-broken by document id).
"""

from __future__ import annotations

import json
from pathlib import Path

import ir_measures
import numpy as np
from scipy import stats

from ddro.runs import Run

MEASURES = ["RR@10", "R@1", "R@5", "R@10", "R@100", "Success@1", "Success@5", "Success@10", "nDCG@10"]
"""The reported measures. Papers on generative retrieval that report "Recall@k" on collections
with one relevant document per query (MS MARCO, NQ) mean `Success@k` (any relevant document in
the top k); ir_measures' `R@k` is TREC recall, the fraction of the relevant documents retrieved."""

# The measures drawn in report.png, in drawing order.
PLOTTED = ["RR@10", "R@10", "R@100", "nDCG@10", "Success@1", "Success@10"]

# Sign-flip permutations are drawn in blocks of about this many cells, to bound memory.
_BLOCK_CELLS = 1_000_000


def _parse_measures(measures: list[str]) -> dict:
    """`{parsed measure: name}`; two names for one measure would make one of them vanish."""
    parsed = {}
    for name in measures:
        measure = ir_measures.parse_measure(name)
        if measure in parsed:
            raise ValueError(f"measures {parsed[measure]!r} and {name!r} are the same measure")
        parsed[measure] = name
    return parsed


def _relevant_qrels(qrels: dict, query_ids: list[str]) -> dict:
    """The qrels of the evaluated queries; a query without a relevant document cannot be scored."""
    missing = [q for q in query_ids if not any(rel > 0 for rel in qrels.get(q, {}).values())]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ValueError(f"{len(missing)} evaluated queries have no relevant judgment: {shown}")
    return {q: dict(qrels[q]) for q in query_ids}


def _rank_scored(run: Run, query_ids: list[str]) -> dict:
    """The run restricted to `query_ids`, each document scored by its rank (n, n-1, ..., 1).

    ir_measures' providers re-sort by score and break ties differently (pytrec_eval by document
    id descending, the MS MARCO RR@10 by document id ascending); rank scores make every measure
    see the list order the system returned.
    """
    scored = {}
    for qid in query_ids:
        ranking = run.get(qid, [])
        docs = {doc_id: float(len(ranking) - i) for i, (doc_id, _) in enumerate(ranking)}
        if len(docs) != len(ranking):
            raise ValueError(f"query {qid}: a document appears twice in the ranking")
        if docs:
            scored[qid] = docs
    return scored


def evaluate(run: Run, qrels: dict, query_ids, measures: list[str] = MEASURES) -> dict:
    """Per-query and mean values of `measures` over exactly `query_ids`.

    `qrels` is `{query_id: {doc_id: relevance}}` (`Collection.qrels_dict`); relevance >= 1 counts
    as relevant (ir_measures' default). A query absent from `run`, or with an empty ranking,
    scores 0 on every measure and still counts in the mean; queries of `run` outside `query_ids`
    are ignored. Returns `{"aggregate": {measure: mean}, "per_query": {measure: {qid: value}},
    "queries": n}`.
    """
    query_ids = list(query_ids)
    if not query_ids:
        raise ValueError("no queries to evaluate")
    if len(set(query_ids)) != len(query_ids):
        raise ValueError("query ids to evaluate must be unique")
    parsed = _parse_measures(measures)
    per_query = {name: dict.fromkeys(query_ids, 0.0) for name in parsed.values()}
    relevant = _relevant_qrels(qrels, query_ids)
    for metric in ir_measures.iter_calc(list(parsed), relevant, _rank_scored(run, query_ids)):
        per_query[parsed[metric.measure]][metric.query_id] = float(metric.value)
    aggregate = {name: sum(values.values()) / len(query_ids) for name, values in per_query.items()}
    return {"aggregate": aggregate, "per_query": per_query, "queries": len(query_ids)}


def _paired_differences(values_a: dict, values_b: dict, measure: str) -> tuple[np.ndarray, np.ndarray]:
    if set(values_a) != set(values_b):
        raise ValueError(f"{measure}: the two systems were evaluated on different queries")
    if len(values_a) < 2:
        raise ValueError(f"{measure}: a paired test needs at least 2 queries, found {len(values_a)}")
    qids = sorted(values_a)
    return np.array([values_a[q] for q in qids], float), np.array([values_b[q] for q in qids], float)


def _t_test_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired t-test.

    A constant difference has zero variance, where the t statistic is undefined (scipy gives nan
    for all zeros, and warns and gives 0 otherwise): identical systems give p = 1 (nothing
    differs), a constant non-zero difference gives NaN, since no p-value follows from a
    variance of zero (p = 0 would claim certainty). `metrics.json` writes NaN as null,
    `report.md` as n/a; the randomization test is defined in both cases.
    """
    diff = a - b
    if np.all(diff == diff[0]):
        return 1.0 if diff[0] == 0 else float("nan")
    return float(stats.ttest_rel(a, b).pvalue)


def json_text(value) -> str:
    """`value` as indented JSON, with NaN (an undefined test) written as null: JSON has no NaN."""
    def clean(v):
        if isinstance(v, float) and v != v:
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), indent=2, allow_nan=False) + "\n"


def _randomization_p(diff: np.ndarray, n_permutations: int, seed: int) -> float:
    """Two-sided paired randomization test: under the null hypothesis each query's difference is
    as likely to have either sign, so flip signs at random and count means at least as extreme
    as the observed one. The observed ranking counts as one permutation (the +1s), so p > 0."""
    rng = np.random.default_rng(seed)
    observed = abs(diff.mean())
    # Means equal to the observed one up to float error count as "at least as extreme".
    threshold = observed - 1e-12 * max(1.0, observed)
    rows = max(1, _BLOCK_CELLS // len(diff))
    extreme = 0
    for start in range(0, n_permutations, rows):
        signs = rng.choice([-1.0, 1.0], size=(min(rows, n_permutations - start), len(diff)))
        extreme += int(np.count_nonzero(np.abs(signs @ diff / len(diff)) >= threshold))
    return (extreme + 1) / (n_permutations + 1)


def paired_tests(per_query_a: dict, per_query_b: dict, n_permutations: int = 10000, seed: int = 0) -> dict:
    """Significance of system A vs system B, measure by measure, over the same queries.

    Takes two `evaluate(...)["per_query"]` dicts. Returns `{measure: {"t_test_p",
    "randomization_p", "mean_difference"}}` with mean_difference = mean(A - B). Each measure's
    randomization test starts from `seed`, so its p-value does not depend on the other measures.
    """
    if set(per_query_a) != set(per_query_b):
        raise ValueError("the two systems were evaluated with different measures")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be at least 1, not {n_permutations}")
    results = {}
    for measure in per_query_a:
        a, b = _paired_differences(per_query_a[measure], per_query_b[measure], measure)
        results[measure] = {
            "t_test_p": _t_test_p(a, b),
            "randomization_p": _randomization_p(a - b, n_permutations, seed),
            "mean_difference": float((a - b).mean()),
        }
    return results


def _measures_present(systems: dict) -> list[str]:
    """Measures of any system, known ones in MEASURES order, then others as first seen."""
    seen = list(dict.fromkeys(m for values in systems.values() for m in values))
    return [m for m in MEASURES if m in seen] + [m for m in seen if m not in MEASURES]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _systems_table(systems: dict) -> list[str]:
    measures = _measures_present(systems)
    rows = [
        [name] + [f"{values[m]:.3f}" if m in values else "-" for m in measures]
        for name, values in systems.items()
    ]
    return _table(["system"] + measures, rows)


def _p_text(p) -> str:
    return "n/a" if p is None or p != p else f"{p:.4f}"


def _significance_table(significance: dict) -> list[str]:
    rows = [
        [comparison, measure, _p_text(tests["t_test_p"]), _p_text(tests["randomization_p"])]
        for comparison, by_measure in significance.items()
        for measure, tests in by_measure.items()
    ]
    return _table(["comparison", "measure", "paired t-test p", "randomization p"], rows)


def _plain(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _report_markdown(metrics: dict) -> str:
    split = metrics["split"]
    lines = [
        f"# Evaluation: {metrics['collection']}",
        "",
        f"Split: {split['rule']}, {split['train_queries']} training queries, {split['test_queries']} test queries.",
        "",
        *_systems_table(metrics["systems"]),
    ]
    if metrics.get("significance"):
        lines += ["", "## Significance (two-sided, paired over test queries)", "", *_significance_table(metrics["significance"])]
    if metrics.get("timings"):
        lines += ["", "## Timings", ""] + [f"- {name}: {_plain(value)}" for name, value in metrics["timings"].items()]
    return "\n".join(lines) + "\n"


def _plot(metrics: dict, path: Path) -> None:
    """Grouped bars, one group per measure, one bar per system.

    matplotlib is imported here, and through its object API with the Agg canvas rather than
    pyplot, so that importing ddro stays light and no global backend is switched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    systems = metrics["systems"]
    measures = [m for m in PLOTTED if any(m in values for values in systems.values())]
    fig = Figure(figsize=(max(6.0, 1.3 * len(measures) + 2), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(systems))
    positions = np.arange(len(measures))
    for i, (name, values) in enumerate(systems.items()):
        heights = [values.get(m, 0.0) for m in measures]
        ax.bar(positions + (i - (len(systems) - 1) / 2) * width, heights, width, label=name)
    ax.set_xticks(positions, measures)
    ax.set_xlabel("measure")
    ax.set_ylabel("mean over test queries")
    ax.set_ylim(0, 1)
    ax.set_title(f"{metrics['collection']}: test queries")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)


def write_report(metrics: dict, out_dir) -> tuple[Path, Path]:
    """Write `report.md` (tables of measures and significance) and `report.png` (bar chart).

    `metrics` holds `collection`, `split` (`rule`, `train_queries`, `test_queries`), `systems`
    (`{system: {measure: value}}`) and optionally `significance` (`{comparison: {measure:
    {"t_test_p", "randomization_p"}}}`) and `timings`. Returns the two paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, png_path = out_dir / "report.md", out_dir / "report.png"
    md_path.write_text(_report_markdown(metrics))
    _plot(metrics, png_path)
    return md_path, png_path
