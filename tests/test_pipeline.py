"""The main job, `ddro run`, and the CLI chain train sft -> search -> eval, on the tiny preset."""

import json
import shutil

import pytest

from ddro.cli import main
from ddro.models import DocidModel

from conftest import DATA, write_query_generator

SYSTEM_KEYS = {"RR@10", "R@10", "R@100", "Success@1", "Success@10", "nDCG@10"}


def check_run_folder(out, test_queries):
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"]["test_queries"] == test_queries and "rule" in metrics["split"]
    pure, fused = {"bm25", "dense", "sft", "ddro"}, {"bm25+dense", "ddro+bm25", "ddro+bm25+dense"}
    assert set(metrics["systems"]) == pure | fused
    assert set(metrics["significance"]) == {"sft_vs_bm25", "ddro_vs_sft", "ddro_vs_bm25", "sft_vs_dense", "ddro_vs_dense",
                                            "ddro+bm25_vs_bm25", "ddro+bm25+dense_vs_bm25+dense"}
    # Every system measured on the training queries SFT held out too, never on a test query.
    validation = metrics["validation"]
    assert set(validation["systems"]) == pure | fused and validation["queries"] > 0
    assert not set(validation["per_query"]["sft"]["RR@10"]) & set(metrics["per_query"]["sft"]["RR@10"])
    assert metrics["ddro"]["pairs"] > 0 and "ddro_over_sft" in metrics["timings"]
    for values in metrics["systems"].values():
        assert SYSTEM_KEYS <= set(values) and all(0.0 <= v <= 1.0 for v in values.values())
    p = metrics["significance"]["sft_vs_bm25"]["RR@10"]
    assert 0.0 < p["randomization_p"] <= 1.0 and 0.0 <= p["t_test_p"] <= 1.0
    assert {"docids_seconds", "bm25_seconds", "sft_seconds", "search_seconds"} <= set(metrics["timings"])
    for name in ("report.md", "report.png", "runs/bm25.trec", "runs/dense.trec", "runs/sft.trec", "runs/ddro.trec", "config.json",
                 "runs/ddro+bm25.trec", "runs/validation/ddro.trec", "runs/validation/bm25+dense.trec",
                 "model/ddro_model.json", "model-ddro/ddro_model.json"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert all(config["versions"][package] for package in ("torch", "PyStemmer", "sentence-transformers"))
    assert config["run"]["seed"] == 0 and config["preset"]["name"] == "tiny"
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    return metrics


def test_run_tiny_end_to_end_and_resume(beir_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "--collection", str(beir_dir), "--out", str(out), "--preset", "tiny", "--eval-steps", "2",
            "--validation-beams", "4"]
    assert main(args) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith("run: tiny 5 test queries: RR@10 bm25")
    first = check_run_folder(out, 5)
    trained = (out / "ddro_summary.json").stat().st_mtime_ns
    assert main(args) == 2  # the folder exists
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["systems"] == first["systems"]
    reused = (out / "ddro_summary.json").stat().st_mtime_ns
    assert reused == trained  # same settings: the phase was loaded, not trained again
    assert main(args + ["--resume", "--beta", "0.2"]) == 0  # other DDRO settings: the phase is trained again
    assert (out / "ddro_summary.json").stat().st_mtime_ns != reused
    assert json.loads((out / "ddro_summary.json").read_text())["config"]["beta"] == 0.2
    config_before = (out / "config.json").read_text()
    assert main(args + ["--resume", "--scheme", "atomic"]) == 2  # other docids: not continued
    assert "--resume found docids built with" in capsys.readouterr().err
    assert (out / "config.json").read_text() == config_before


def test_run_dtype_searches_the_saved_model_cast_as_search_does(beir_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--collection", str(beir_dir), "--out", str(out), "--preset", "tiny", "--no-ddro",
                 "--dtype", "bf16", "--k", "10", "--beams", "10"]) == 0
    assert json.loads((out / "metrics.json").read_text())["dtype"] == "bf16"
    capsys.readouterr()
    for dtype in ("bf16", "fp32"):
        assert main(["search", "--collection", str(beir_dir), "--model", str(out / "model"), "--dtype", dtype,
                     "--out", str(tmp_path / f"{dtype}.trec"), "--tag", "sft", "--k", "10", "--beams", "10"]) == 0
    run = (out / "runs" / "sft.trec").read_text()
    assert run == (tmp_path / "bf16.trec").read_text()
    assert run != (tmp_path / "fp32.trec").read_text()  # the scores of rounded weights differ


def test_run_with_a_query_generator_feeds_both_phases_and_caches_its_queries(beir_dir, tmp_path):
    qg = write_query_generator(tmp_path / "qg")
    out = tmp_path / "run"
    args = ["run", "--collection", str(beir_dir), "--out", str(out), "--preset", "tiny", "--eval-steps", "2",
            "--validation-beams", "4", "--qg-model", str(qg)]
    assert main(args) == 0
    assert DocidModel.load(out / "model").qg_model == str(qg)
    assert list((out / "training" / "pseudo_queries").glob("*.json"))  # SFT's stage 2
    assert list((out / "training" / "ddro" / "pseudo_queries").glob("*.json"))  # DDRO's own samples
    shutil.rmtree(qg)
    assert main(args + ["--resume", "--beta", "0.2"]) == 0  # DDRO trains again, from the cached queries
    assert json.loads((out / "ddro_summary.json").read_text())["config"]["beta"] == 0.2


def test_cpu_docids_follow_the_collection_size_and_scheme_keeps_the_presets_shapes():
    from ddro.models import get_preset
    from ddro.pipeline import run_docid_config

    cpu = get_preset("cpu")
    common = {"seed": 0, "collisions": "suffix", "encoder": "minilm"}
    pq, rq = common | {"scheme": "pq", "pq_m": 4, "pq_k": 256}, common | {"scheme": "rq", "rq_levels": 4, "rq_k": 256}
    limit = cpu.docid_plan.large_collection
    assert run_docid_config(cpu, None, 0, limit).recorded() == pq
    assert run_docid_config(cpu, None, 0, limit + 1).recorded() == rq
    assert run_docid_config(cpu, "rq", 0, 10).recorded() == rq
    assert run_docid_config(cpu, "pq", 0, limit + 1).recorded() == pq
    assert run_docid_config(cpu, "hkmeans", 2, 10).recorded()["seed"] == 2
    assert run_docid_config(get_preset("tiny"), None, 0, 10**6).recorded()["pq_m"] == 2  # one scheme at every size


def test_cli_chain_train_search_eval(beir_dir, tmp_path, capsys):
    docids, model, run = tmp_path / "docids", tmp_path / "model", tmp_path / "sft.trec"
    assert main(["docids", "--collection", str(beir_dir), "--scheme", "pq", "--encoder", "lsa:16", "--pq-m", "2",
                 "--pq-k", "8", "--out", str(docids)]) == 0
    assert main(["train", "sft", "--collection", str(beir_dir), "--docids", str(docids), "--out", str(model),
                 "--preset", "tiny"]) == 0
    assert main(["search", "--model", str(model), "--collection", str(beir_dir), "--out", str(run), "--k", "5",
                 "--beams", "5"]) == 0
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--collection", str(beir_dir)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["queries"] == 5 and SYSTEM_KEYS <= set(result["measures"])
    lines = run.read_text().splitlines()
    assert len(lines) == 25 and all(len(line.split()) == 6 for line in lines)
    half = tmp_path / "bf16.trec"
    assert main(["search", "--model", str(model), "--collection", str(beir_dir), "--out", str(half), "--k", "5",
                 "--beams", "5", "--dtype", "bf16"]) == 0
    assert "bf16" in capsys.readouterr().out and len(half.read_text().splitlines()) == 25
    qg = write_query_generator(tmp_path / "qg")
    assert main(["train", "ddro", "--collection", str(beir_dir), "--model", str(model), "--out", str(tmp_path / "ddro"),
                 "--qg-model", str(qg), "--pseudo-queries", "8", "--epochs", "0.5", "--eval-steps", "2"]) == 0
    assert "train ddro:" in capsys.readouterr().out
    assert DocidModel.load(tmp_path / "ddro").qg_model == str(qg)  # recorded, so later phases draw from it too
    assert list((tmp_path / "ddro" / "training" / "pseudo_queries").glob("*.json"))


def test_train_rejects_a_table_of_another_collection(beir_dir, tmp_path, capsys):
    from conftest import write_beir

    other = write_beir(tmp_path / "other", n_docs=12)
    assert main(["docids", "--collection", str(other), "--scheme", "atomic", "--out", str(tmp_path / "d")]) == 0
    assert main(["train", "sft", "--collection", str(beir_dir), "--docids", str(tmp_path / "d"),
                 "--out", str(tmp_path / "m"), "--preset", "tiny"]) == 2
    assert "another collection" in capsys.readouterr().err


@pytest.mark.slow
def test_run_tiny_on_cranfield(tmp_path):
    if not (DATA / "cranfield").is_dir():
        pytest.skip("../shared/data/cranfield not present")
    out = tmp_path / "cran"
    assert main(["run", "--collection", str(DATA / "cranfield"), "--out", str(out), "--preset", "tiny",
                 "--epochs", "1", "--validation-beams", "4"]) == 0
    metrics = check_run_folder(out, 75)
    assert metrics["systems"]["bm25"]["RR@10"] > 0.4
