"""One recipe layer: `ddro train ...` and `ddro run` train through the same `ddro.recipes` functions,
and a phase's output says whether it is complete."""

import json

import pytest

from ddro import recipes
from ddro.cli import main
from ddro.outputs import atomic_files, atomic_write_text


class Called(Exception):
    pass


def refuse(name):
    def recipe(*args, **kwargs):
        raise Called(name)
    return recipe


def test_train_sft_and_run_call_the_same_sft_recipe(beir_dir, tmp_path, monkeypatch):
    assert main(["docids", "--collection", str(beir_dir), "--scheme", "atomic", "--out", str(tmp_path / "d")]) == 0
    monkeypatch.setattr(recipes, "train_sft", refuse("sft"))
    with pytest.raises(Called, match="sft"):
        main(["train", "sft", "--collection", str(beir_dir), "--docids", str(tmp_path / "d"), "--out",
              str(tmp_path / "m"), "--preset", "tiny"])
    with pytest.raises(Called, match="sft"):
        main(["run", "--collection", str(beir_dir), "--out", str(tmp_path / "run"), "--preset", "tiny",
              "--scheme", "atomic"])


def test_train_ddro_and_run_call_the_same_ddro_recipe(beir_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    run = ["run", "--collection", str(beir_dir), "--out", str(out), "--preset", "tiny", "--scheme", "atomic"]
    assert main(run + ["--no-ddro"]) == 0
    monkeypatch.setattr(recipes, "train_ddro", refuse("ddro"))
    with pytest.raises(Called, match="ddro"):
        main(run + ["--resume"])
    with pytest.raises(Called, match="ddro"):
        main(["train", "ddro", "--collection", str(beir_dir), "--model", str(out / "model"),
              "--out", str(tmp_path / "ddro")])
    assert not (tmp_path / "ddro").exists()  # the failed phase left no folder


def test_stages_are_complete_once_their_result_file_is_written(tmp_path):
    stage = recipes.SFTStage.in_folder(tmp_path / "m")
    assert not stage.is_complete()
    atomic_write_text(stage.result_file, "{}\n")
    assert stage.is_complete() and stage.result_file.parent == tmp_path / "m" / "training"
    assert not recipes.DDROStage.in_folder(tmp_path / "m").is_complete()
    assert not recipes.DocidsStage(tmp_path / "docids").is_complete()


def test_atomic_files_replace_each_file_whole_or_not_at_all(tmp_path):
    (tmp_path / "metrics.json").write_text("old")
    with pytest.raises(OSError):
        with atomic_files(tmp_path) as tmp:
            (tmp / "metrics.json").write_text("new")
            raise OSError("disk full")
    assert (tmp_path / "metrics.json").read_text() == "old"
    with atomic_files(tmp_path) as tmp:
        (tmp / "metrics.json").write_text(json.dumps({"new": 1}))
        (tmp / "report.md").write_text("# report")
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"new": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "report.md"]  # no partial folder left


def test_documents_of_another_collection_are_refused(tiny):
    collection, model = tiny
    assert recipes.check_documents(model.table.doc_ids, collection, "m", "c") is collection
    # The same documents in another order (documents added to a model come last): the collection
    # in the table's order, which training indexes them by.
    reordered = recipes.check_documents(model.table.doc_ids[::-1], collection, "m", "c")
    assert [d.doc_id for d in reordered.docs] == model.table.doc_ids[::-1]
    assert reordered.qrels_dict() == collection.qrels_dict()
    with pytest.raises(recipes.DdroError, match="m: made for another collection than c"):
        recipes.check_documents(model.table.doc_ids[:-1] + ["elsewhere"], collection, "m", "c")
