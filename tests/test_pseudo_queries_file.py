"""`--pseudo-queries-file`: pseudo-queries from a `doc_id<TAB>query` file for SFT stage 2 and DDRO."""

import copy
import logging
import json

import pytest

from ddro.cli import main
from ddro.collections import PseudoQuery
from ddro.errors import DdroError
from ddro.models import DocidModel, get_preset
from ddro.training.ddro import DDROConfig, DDROResult, training_queries
from ddro.outputs import file_sha256
from ddro.training.instances import file_pseudo_queries
from ddro.training.sft import stage_examples_for

from conftest import bare_corpus, write_beir, write_query_generator


def write_pseudo_queries(path, collection):
    """Three queries for each even-numbered document, one line of a document not in the collection."""
    lines = [f"{d.doc_id}\t{d.doc_id} query {k}" for i, d in enumerate(collection.docs) if i % 2 == 0 for k in range(3)]
    path.write_text("\n".join(lines[:4] + ["elsewhere\tnot this collection"] + lines[4:]) + "\n")
    return path


def test_file_queries_are_stage_2_examples_and_recorded(tiny, tmp_path, caplog):
    collection, model = tiny
    model = copy.copy(model)
    path = write_pseudo_queries(tmp_path / "pq.tsv", collection)
    preset = get_preset("tiny")  # 2 pseudo-queries per document
    with caplog.at_level(logging.INFO, logger="ddro"):
        examples = stage_examples_for(collection, model, preset, pseudo_queries_file=path)["pseudo"]
    expected = [(f"{d.doc_id} query {k}", i) for i, d in enumerate(collection.docs) if i % 2 == 0 for k in range(2)]
    assert examples == expected  # the first N lines of each listed document; the others get none
    assert "1 lines of documents not in the collection skipped" in caplog.text
    assert model.pseudo_queries_file == str(path.resolve()) and model.pseudo_queries_sha256 == file_sha256(path)
    model.save(tmp_path / "m")
    loaded = DocidModel.load(tmp_path / "m")
    assert (loaded.pseudo_queries_file, loaded.pseudo_queries_sha256) == (model.pseudo_queries_file, file_sha256(path))


def test_ddro_draws_one_of_the_documents_file_queries(tiny, tmp_path):
    collection, model = tiny
    model = copy.copy(model)
    path = write_pseudo_queries(tmp_path / "pq.tsv", collection)
    stage_examples_for(collection, model, get_preset("tiny"), pseudo_queries_file=path)
    train, validation, positives = training_queries(bare_corpus(collection), model, DDROConfig(pseudo_queries=30))
    pseudo = train + validation
    assert pseudo and all(isinstance(q, PseudoQuery) for q in pseudo)
    for q in pseudo:
        doc = positives[q.query_id][0]
        assert doc % 2 == 0 and q.text in {f"{collection.docs[doc].doc_id} query {k}" for k in range(3)}
    assert len(pseudo) == len(range(0, len(collection.docs), 2))  # every listed document, no other
    path.write_text(path.read_text() + "d1\tone more\n")
    with pytest.raises(DdroError, match="has changed"):
        training_queries(bare_corpus(collection), model, DDROConfig(pseudo_queries=30))


def test_cli_refuses_a_file_and_a_generator_together_and_reports_bad_lines(tmp_path, capsys):
    beir = write_beir(tmp_path / "c", n_docs=10)
    assert main(["docids", "--collection", str(beir), "--scheme", "atomic", "--out", str(tmp_path / "t")]) == 0
    common = ["train", "sft", "--collection", str(beir), "--docids", str(tmp_path / "t"), "--preset", "tiny",
              "--out", str(tmp_path / "m")]
    (tmp_path / "pq.tsv").write_text("d0\tgood query\nd1 bad\n")
    capsys.readouterr()
    assert main(common + ["--pseudo-queries-file", str(tmp_path / "pq.tsv"), "--qg-model", "x"]) == 2
    assert capsys.readouterr().err.strip().endswith("give either --pseudo-queries-file or --qg-model, not both")
    assert main(common + ["--pseudo-queries-file", str(tmp_path / "pq.tsv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"ddro: error: {tmp_path / 'pq.tsv'}:2: expected 'doc_id<TAB>query', found 0 tabs"
    assert not (tmp_path / "m").exists()


def test_train_ddro_reads_the_recorded_file_unless_told_otherwise(tiny, tmp_path, monkeypatch, capsys):
    """`ddro train ddro` without the option draws from the file SFT recorded; an explicit
    `--qg-model` or `--pseudo-queries-file` replaces it; both together are refused."""
    import ddro.training.ddro as ddro_phase

    collection, model = tiny
    model = copy.copy(model)
    beir = write_beir(tmp_path / "c", n_docs=30)
    path = write_pseudo_queries(tmp_path / "pq.tsv", collection)
    stage_examples_for(collection, model, get_preset("tiny"), pseudo_queries_file=path)
    model.save(tmp_path / "sft")
    seen = []

    def fake_train_ddro(docid_model, collection, config, out_dir, resume=False):
        seen.append((docid_model.pseudo_queries_file, docid_model.qg_model))
        if docid_model.pseudo_queries_file:
            train, validation, _ = training_queries(collection, docid_model, config)
            seen.append({q.text for q in train + validation if isinstance(q, PseudoQuery)})
        return DDROResult(pairs=1, train_queries=1, validation_queries=0, selected_step=0, validation_measure=None,
                          validation_score=None, validation_history=[], steps=0, mining_seconds=0.0,
                          reference_seconds=0.0, training_seconds=0.0, seconds=0.0, config=config.record())

    monkeypatch.setattr(ddro_phase, "train_ddro", fake_train_ddro)
    common = ["train", "ddro", "--collection", str(beir), "--test-fraction", "0.3", "--model", str(tmp_path / "sft"),
              "--overwrite", "--pseudo-queries", "30"]
    assert main(common + ["--out", str(tmp_path / "a")]) == 0
    assert seen[0] == (str(path.resolve()), None)
    assert seen[1] and all(" query " in text for text in seen[1])
    assert json.loads((tmp_path / "a" / "ddro_model.json").read_text())["pseudo_queries_sha256"] == file_sha256(path)
    other = tmp_path / "other.tsv"
    other.write_text("d0\tanother query\n")
    assert main(common + ["--out", str(tmp_path / "b"), "--pseudo-queries-file", str(other)]) == 0
    assert seen[2] == (str(other.resolve()), None) and seen[3] == {"another query"}
    qg = str(write_query_generator(tmp_path / "qg"))
    assert main(common + ["--out", str(tmp_path / "c2"), "--qg-model", qg]) == 0
    assert seen[4] == (None, qg)
    capsys.readouterr()
    assert main(common + ["--out", str(tmp_path / "d"), "--qg-model", qg, "--pseudo-queries-file", str(other)]) == 2
    assert "not both" in capsys.readouterr().err


def test_ddro_run_hands_the_file_to_sft(tmp_path, monkeypatch, capsys):
    import ddro.training.sft as sft

    beir = write_beir(tmp_path / "c", n_docs=10)
    (tmp_path / "pq.tsv").write_text("d0\tgood query\n")
    given = []

    def stop_after_examples(collection, docid_model, preset, qg_model=None, cache_dir=None, pseudo_queries_file=None):
        given.append((qg_model, pseudo_queries_file))
        raise DdroError("stopped")

    monkeypatch.setattr(sft, "stage_examples_for", stop_after_examples)
    assert main(["run", "--collection", str(beir), "--preset", "tiny", "--scheme", "atomic", "--out", str(tmp_path / "o"),
                 "--pseudo-queries-file", str(tmp_path / "pq.tsv")]) == 2
    assert given == [(None, str(tmp_path / "pq.tsv"))] and "stopped" in capsys.readouterr().err
