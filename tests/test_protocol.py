"""benchmarks/protocol.py: settings compared over seeds on the validation or the test part."""

import json
import statistics

import pytest

from ddro.evaluation import paired_tests

from test_docs import load_script


def write_run(folder, seed, test, validation):
    """A run folder whose systems score `test` / `validation` ({system: [RR@10 per query]})."""
    def part(values):
        per_query = {s: {m: {f"q{i}": v for i, v in enumerate(vs)} for m in ("RR@10", "nDCG@10")}
                     for s, vs in values.items()}
        return {s: {m: statistics.fmean(vs) for m in ("RR@10", "nDCG@10")} for s, vs in values.items()}, per_query

    folder.mkdir(parents=True)
    (test_systems, test_per_query), (held_systems, held_per_query) = part(test), part(validation)
    (folder / "metrics.json").write_text(json.dumps({
        "collection": "../shared/data/npl", "seed": seed, "systems": test_systems, "per_query": test_per_query,
        "validation": {"queries": len(validation["sft"]), "systems": held_systems, "per_query": held_per_query}}))
    return folder


def test_means_spreads_and_per_seed_tests_against_the_baseline(tmp_path, capsys):
    protocol = load_script("protocol")
    base, other = [], []
    for seed in (0, 1, 2):
        base.append(write_run(tmp_path / f"base{seed}", seed, {"sft": [0.1 * seed, 0.5, 1.0]},
                              {"sft": [0.2, 0.3 + 0.1 * seed, 0.5, 1.0]}))
        other.append(write_run(tmp_path / f"other{seed}", seed, {"sft": [1.0, 1.0, 1.0]},
                               {"sft": [0.5, 0.5, 1.0, 1.0 - 0.1 * seed]}))
    settings = [f"base={','.join(map(str, base))}", f"other={','.join(map(str, other))}"]
    protocol.main([*settings, "--baseline", "base", "--json"])
    rows = {row["setting"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    expected = [statistics.fmean([0.2, 0.3 + 0.1 * s, 0.5, 1.0]) for s in (0, 1, 2)]
    assert rows["base"]["RR@10"]["values"] == pytest.approx(expected)
    assert rows["base"]["RR@10"]["mean"] == pytest.approx(statistics.fmean(expected))
    assert rows["base"]["RR@10"]["sd"] == pytest.approx(statistics.stdev(expected))
    assert "vs_baseline_p" not in rows["base"]
    base_per_query = json.loads((base[1] / "metrics.json").read_text())["validation"]["per_query"]["sft"]
    other_per_query = json.loads((other[1] / "metrics.json").read_text())["validation"]["per_query"]["sft"]
    assert rows["other"]["vs_baseline_p"]["RR@10"]["1"] == paired_tests(other_per_query, base_per_query)["RR@10"]["randomization_p"]
    protocol.main([*settings, "--part", "test"])
    table = capsys.readouterr().out
    assert "| npl | other | sft | 3 | 1.000 ± 0.000 |" in table


def test_a_folder_without_metrics_is_one_clear_line(tmp_path):
    protocol = load_script("protocol")
    with pytest.raises(SystemExit, match="no metrics.json"):
        protocol.main([f"base={tmp_path}"])
