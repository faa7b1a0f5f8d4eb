"""The split a model was trained with is recorded and checked; given splits are checked for
overlap; each part of a file-defined split reads its own judgments."""

import json

import pytest

from ddro.cli import main
from ddro.collections import load_collection
from ddro.errors import DdroError

from conftest import write_beir


def _error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ddro:")]  # not progress bars
    assert len(err) == 1 and err[0].startswith("ddro: error:"), err
    return err[0]


def test_split_record_names_rule_count_and_test_ids(beir_dir):
    given = load_collection(beir_dir).split.record()
    assert given["rule"].startswith("given(") and given["test_queries"] == 5
    assert load_collection(beir_dir).split.record() == given
    other = load_collection(beir_dir, test_fraction=0.5).split.record()
    assert other["test_ids_sha1"] != given["test_ids_sha1"]


def test_given_split_refuses_a_query_in_both_parts(tmp_path):
    folder = write_beir(tmp_path / "c")
    with open(folder / "qrels" / "test.tsv", "a") as fh:
        fh.write("q0\td3\t1\n")  # q0 is a training query (train.tsv) too
    with pytest.raises(DdroError, match=r"qrels/train.tsv, qrels/test.tsv\).*both the training and the test part.*'q0'"):
        load_collection(folder)
    assert "q0" in load_collection(folder, test_fraction=0.3).split.train + load_collection(folder, test_fraction=0.3).split.test


def test_each_part_reads_only_its_own_files_judgments(tmp_path):
    folder = write_beir(tmp_path / "c")
    (folder / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td7\t2\nq1\td8\t1\nq9\td2\t1\n")
    with open(folder / "qrels" / "train.tsv", "a") as fh:
        fh.write("q9\td4\t0\n")  # q9: train.tsv judges it not relevant, only dev.tsv relevant
    c = load_collection(folder)
    assert c.qrels_dict(["q0"], "train") == {"q0": {"d0": 1, "d5": 2}}  # not dev.tsv's d7
    assert c.qrels_dict(["q1"], "test") == {"q1": {"d1": 1, "d6": 2}}  # not dev.tsv's d8
    assert c.qrels_dict(["q0"]) == {"q0": {"d0": 1, "d5": 2, "d7": 2}}  # every judgment when no part is asked
    assert "q9" not in c.split.train  # no relevant judgment in the training part's file
    from ddro.training.ddro import DDROConfig, training_queries

    class Model:  # what training_queries reads of a model
        table = type("T", (), {"doc_ids": [d.doc_id for d in c.docs]})
        validation_fraction, qg_model = 0.0, None

    _, _, positives = training_queries(c, Model, DDROConfig(pseudo_queries=0, validation_fraction=0.0))
    assert sorted(positives["q0"]) == [0, 5]
    # A split by the fraction rule has no parts of files: every judgment counts, as before.
    mixed = load_collection(folder, test_fraction=0.3)
    part = "train" if "q0" in mixed.split.train else "test"
    assert mixed.qrels_dict(["q0"], part) == {"q0": {"d0": 1, "d5": 2, "d7": 2}}


def test_msmarco_parts_read_their_own_qrels_files(tmp_path):
    (tmp_path / "docs.tsv").write_text("D1\tone\nD2\ttwo\nD3\tthree\n")
    (tmp_path / "queries.train.tsv").write_text("1\tfirst query\n")
    (tmp_path / "queries.dev.tsv").write_text("2\tsecond query\n")
    (tmp_path / "qrels.train.tsv").write_text("1 0 D1 1\n")
    (tmp_path / "qrels.dev.tsv").write_text("2 0 D2 1\n1 0 D3 1\n")
    c = load_collection(tmp_path)
    assert c.qrels_dict(c.split.train, "train") == {"1": {"D1": 1}}
    assert c.qrels_dict(c.split.test, "test") == {"2": {"D2": 1}}


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory):
    """A tiny SFT model trained on a BEIR folder's own split (train.tsv / test.tsv)."""
    root = tmp_path_factory.mktemp("split")
    collection = write_beir(root / "c")
    assert main(["docids", "--collection", str(collection), "--scheme", "atomic", "--out", str(root / "docids")]) == 0
    assert main(["train", "sft", "--collection", str(collection), "--docids", str(root / "docids"),
                 "--out", str(root / "sft"), "--preset", "tiny"]) == 0
    return collection, root / "sft"


def test_model_records_its_split_and_later_steps_refuse_another(sft_model, tmp_path, capsys):
    collection, model = sft_model
    meta = json.loads((model / "ddro_model.json").read_text())
    assert meta["split"] == load_collection(collection).split.record()
    other = ["--collection", str(collection), "--test-fraction", "0.5"]
    assert main(["train", "ddro", "--model", str(model), "--out", str(tmp_path / "ddro"), *other]) == 2
    assert "was made with the split given(" in _error_line(capsys) and not (tmp_path / "ddro").exists()
    assert main(["search", "--model", str(model), "--out", str(tmp_path / "x.trec"), *other]) == 2
    _error_line(capsys)
    run = tmp_path / "run.trec"
    assert main(["search", "--model", str(model), "--collection", str(collection), "--out", str(run),
                 "--k", "3", "--beams", "3"]) == 0
    sidecar = json.loads((tmp_path / "run.trec.split.json").read_text())
    assert sidecar["split"] == meta["split"] and sidecar["queries"] == "test"
    capsys.readouterr()
    assert main(["eval", "--run", str(run), *other]) == 2
    assert str(run) in _error_line(capsys)
    assert main(["eval", "--run", str(run), "--collection", str(collection)]) == 0


def test_a_model_from_before_split_records_passes_with_a_warning(sft_model, tmp_path, capsys):
    import shutil

    collection, model = sft_model
    old = tmp_path / "old"
    shutil.copytree(model, old)
    meta = json.loads((old / "ddro_model.json").read_text())
    del meta["split"]
    (old / "checksums.json").unlink()  # a model from before ddro kept checksums too
    (old / "ddro_model.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["search", "--model", str(old), "--collection", str(collection), "--out", str(tmp_path / "r.trec"),
                 "--k", "3", "--beams", "3"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ddro:")]
    assert len(err) == 1 and err[0].startswith("ddro: warning:") and "records no split" in err[0]


def test_run_resume_refuses_another_split(beir_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    recorded = load_collection(beir_dir).split.record()  # what a first `ddro run` on the folder's own split wrote
    (out / "config.json").write_text(json.dumps({"split": recorded}))
    assert main(["run", "--collection", str(beir_dir), "--out", str(out), "--preset", "tiny", "--resume",
                 "--test-fraction", "0.5"]) == 2
    assert "pass the --test-fraction it was made with" in _error_line(capsys)
    assert json.loads((out / "config.json").read_text()) == {"split": recorded}  # left as it was
