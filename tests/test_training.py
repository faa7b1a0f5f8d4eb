"""SFT training data and the stage runner: examples, pseudo-queries, resume, a few steps learn."""

import json

import numpy as np
import pytest
import torch

from ddro.collections import Document, load_collection
from ddro.docids import DocidConfig, build_docids
from ddro.errors import DdroError
from ddro.models import build_docid_model, get_preset
from ddro.training.instances import extractive_pseudo_queries, index_examples, pseudo_examples, query_examples
from ddro.training.sft import SFTConfig, stage_examples_for, train_sft

from conftest import on_model_device, write_beir, write_query_generator


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    collection = load_collection(write_beir(tmp_path_factory.mktemp("c") / "tiny", n_docs=20))
    preset = get_preset("tiny")
    table = build_docids(collection, DocidConfig(**preset.docid_plan.docids))
    return collection, preset, table


def test_index_examples_cover_titles_passages_and_terms():
    doc = Document("a", "Wing theory", " ".join(f"w{i}" for i in range(95)) + " lift lift drag")
    examples = index_examples([doc, Document("b", "", "")], passages_per_doc=2, passage_words=40, seed=0)
    texts = [t for t, d in examples if d == 0]
    assert texts[0] == "Wing theory"
    assert texts[1] == "Wing theory " + " ".join(f"w{i}" for i in range(40))
    assert texts[2].startswith("Wing theory w40") and len(texts) == 4  # 2 passages max, then sampled terms
    assert set(texts[3].split()) <= {"wing", "theory", "lift", "drag"} | {f"w{i}" for i in range(95)}
    assert [t for t, d in examples if d == 1] == ["b"]  # an empty document still gets an example


def test_extractive_pseudo_queries_are_distinct_and_seeded():
    doc = Document("a", "Title", "First sentence here. " + " ".join(f"word{i}" for i in range(60)))
    a = extractive_pseudo_queries(doc, 6, seed=1, doc_index=0)
    assert a[:2] == ["Title", "First sentence here."] and len(a) == len(set(a)) == 6
    assert all(8 <= len(q.split()) <= 12 for q in a[2:])
    assert a == extractive_pseudo_queries(doc, 6, seed=1, doc_index=0)
    assert a != extractive_pseudo_queries(doc, 6, seed=2, doc_index=0)


def test_query_examples_use_training_queries_only(setup):
    collection, _, _ = setup
    index = {d.doc_id: i for i, d in enumerate(collection.docs)}
    examples = query_examples(collection, index)
    train_texts = {q.text for q in collection.queries_of("train")}
    assert examples and {t for t, _ in examples} <= train_texts
    assert len(examples) == sum(1 for q in collection.qrels if q.query_id in collection.split.train and q.relevance > 0)


def test_pseudo_queries_from_a_generation_model_are_cached(setup, tmp_path, monkeypatch):
    collection, _, _ = setup
    write_query_generator(tmp_path / "qg")
    examples = pseudo_examples(collection.docs[:3], 2, seed=0, qg_model=str(tmp_path / "qg"), cache_dir=tmp_path / "cache")
    assert {d for _, d in examples} <= {0, 1, 2} and len(examples) <= 6
    assert list((tmp_path / "cache" / "pseudo_queries").glob("*.json"))
    import transformers

    monkeypatch.setattr(transformers.AutoModelForSeq2SeqLM, "from_pretrained", lambda *a, **k: 1 / 0)
    again = pseudo_examples(collection.docs[:3], 2, seed=0, qg_model=str(tmp_path / "qg"), cache_dir=tmp_path / "cache")
    assert again == examples
    with pytest.raises(DdroError, match="qg_model"):
        pseudo_examples(collection.docs[:3], 2, seed=0, qg_model=str(tmp_path / "none"), cache_dir=None)


def test_a_few_epochs_lower_the_loss_and_finished_stages_resume(setup, tmp_path):
    collection, preset, table = setup
    preset = get_preset("tiny", stage_overrides={"index_epochs": 8, "pseudo_epochs": 0, "query_epochs": 0})
    model = build_docid_model(preset, table, [d.text for d in collection.docs], seed=0)
    examples = stage_examples_for(collection, model, preset)
    from ddro.batching import DocidCollator
    from ddro.training.sft import ExampleDataset

    batch = DocidCollator(model)([ExampleDataset(examples["index"], model)[i] for i in range(16)])
    with torch.no_grad():
        before = model.model(**batch).loss.item()
    timings = train_sft(model, examples, preset, tmp_path / "t", config=SFTConfig(disable_tqdm=True))
    with torch.no_grad():
        after = model.model(**on_model_device(batch, model.model)).loss.item()
    assert after < before - 0.5
    assert (tmp_path / "t" / "stages" / "index" / "done.json").is_file()
    assert not list((tmp_path / "t" / "stages" / "index").glob("checkpoint-*"))
    fresh = build_docid_model(preset, table, [d.text for d in collection.docs], seed=0)
    resumed = train_sft(fresh, examples, preset, tmp_path / "t", resume=True)
    assert resumed.stages["index"].seconds == pytest.approx(timings.stages["index"].seconds, abs=0.01)
    for a, b in zip(model.model.state_dict().values(), fresh.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())


def test_stage_overrides_are_checked():
    assert get_preset("tiny", stage_overrides={"query_epochs": 3}).stage("query").epochs == 3
    assert get_preset("tiny").stage("query").epochs == 1  # presets are not mutated
    with pytest.raises(DdroError, match="unknown stage setting"):
        get_preset("tiny", stage_overrides={"bogus_epochs": 1})
    with pytest.raises(DdroError, match="must be positive"):
        get_preset("tiny", stage_overrides={"index_learning_rate": 0})


def test_token_rows_hold_what_the_tokenizer_gave_in_flat_arrays(setup):
    from ddro.batching import TokenRows

    collection, preset, table = setup
    model = build_docid_model(preset, table, [d.text for d in collection.docs], seed=0)
    texts = [d.text for d in collection.docs] + [""]
    tokenize = lambda part: model.tokenizer(part, truncation=True, max_length=model.max_input_tokens)["input_ids"]
    rows = TokenRows(tokenize, texts, chunk=7)  # chunks that do not divide the texts
    expected = tokenize(texts)
    assert len(rows) == len(expected) and [rows[i].tolist() for i in range(len(rows))] == expected
    assert rows.tokens.dtype == np.int32 and rows.nbytes == 4 * sum(map(len, expected)) + 8 * (len(expected) + 1)
    assert len(TokenRows(tokenize, [])) == 0
