"""A paired t-test of a constant non-zero difference is undefined: NaN, null in JSON, n/a in report.md."""

import json
import math

from ddro.evaluation import json_text, paired_tests, write_report


def strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_constant_difference_has_no_t_test_p_value(tmp_path):
    qids = [f"q{i}" for i in range(10)]
    a = {"RR@10": {q: 0.5 + i / 100 for i, q in enumerate(qids)}}
    b = {"RR@10": {q: v - 0.25 for q, v in a["RR@10"].items()}}
    tests = paired_tests(a, b, n_permutations=999)["RR@10"]
    assert math.isnan(tests["t_test_p"])
    assert 0 < tests["randomization_p"] < 0.05  # defined: only flips of all ten signs alike reach the mean
    metrics = {"collection": "c", "split": {"rule": "r", "train_queries": 1, "test_queries": 10},
               "systems": {"a": {"RR@10": 0.55}, "b": {"RR@10": 0.3}}, "significance": {"a_vs_b": {"RR@10": tests}}}
    assert strict_json(json_text(metrics))["significance"]["a_vs_b"]["RR@10"]["t_test_p"] is None
    md, _ = write_report(metrics, tmp_path)
    assert f"| a_vs_b | RR@10 | n/a | {tests['randomization_p']:.4f} |" in md.read_text()
