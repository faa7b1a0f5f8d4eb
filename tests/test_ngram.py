"""N-gram docids (`--scheme ngram`): the table and its span index, training targets, the whole run."""

import json

import numpy as np
import pytest

from ddro.cli import main
from ddro.collections import load_collection
from ddro.docids import DocidConfig, DocidTable, build_docids
from ddro.docids.text import load_tokenizer

from conftest import DATA, needs_data, write_beir


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    return load_collection(write_beir(tmp_path_factory.mktemp("c") / "tiny", n_docs=30), test_fraction=0.3)


@pytest.fixture(scope="module")
def table(collection):
    return build_docids(collection, DocidConfig(scheme="ngram", span_tokens=6))


def test_the_table_holds_every_documents_tokens_and_its_first_span(collection, table):
    tokenizer = load_tokenizer("minilm")
    for i, doc in enumerate(collection.docs):
        ids = tokenizer(doc.full_text, add_special_tokens=False)["input_ids"]
        assert [tokenizer.convert_tokens_to_ids(table.vocab[c]) for c in table.spans.document_codes(i)] == ids
        first = table.docid_tokens(i)
        assert first[-1] == tokenizer.sep_token and [tokenizer.convert_tokens_to_ids(t) for t in first[:-1]] == ids[:6]
    assert table.collision_policy == "share" and table.spans.max_tokens == 6


def test_the_table_and_its_index_save_and_load(table, tmp_path):
    table.save(tmp_path / "t")
    again = DocidTable.load(tmp_path / "t")
    assert np.array_equal(again.spans.text, table.spans.text) and again.options == table.options
    (tmp_path / "t" / "spans" / "suffix_array.npy").write_bytes(b"damaged")
    from ddro.errors import DdroError

    with pytest.raises(DdroError, match="suffix_array.npy: changed since"):
        DocidTable.load(tmp_path / "t")


def test_a_target_is_a_span_of_its_document_and_follows_the_words_the_text_shares(collection, table):
    from ddro.docids.ngram import SpanTargets
    from ddro.models import build_docid_model, get_preset

    model = build_docid_model(get_preset("tiny"), table, [d.full_text for d in collection.docs])
    targets = SpanTargets(model, seed=0)
    decoder_codes = {int(t): c for c, t in enumerate(model.docid_token_ids)}
    doc = 7
    examples = [("number 7", doc)] * 30 + [("zzz qqq", doc)] * 30  # "7" is this document's alone
    spans = targets.for_examples(examples)
    codes = table.spans.document_codes(doc).tolist()
    seven = table.vocab.index("7")
    starts = []
    for span in spans:
        assert span[-1] == model.eos_token_id and len(span) == 7
        body = [decoder_codes[int(t)] for t in span[:-1]]
        matches = [s for s in range(len(codes) - len(body) + 1) if codes[s:s + len(body)] == body]
        assert matches
        starts.append(matches[0])
    # The rare word pulls the spans of the first 30 onto it; the 30 that share nothing spread out.
    holding = [seven in codes[s:s + 6] for s in starts]
    assert sum(holding[:30]) >= 20 and sum(holding[30:]) <= 15
    assert len(set(starts[30:])) > 3
    assert [list(s) for s in targets.for_examples(examples)] == [list(s) for s in spans]  # seeded


def test_run_with_ngram_docids_end_to_end(tmp_path, capsys):
    beir = write_beir(tmp_path / "tiny")
    out = tmp_path / "run"
    assert main(["run", "--collection", str(beir), "--out", str(out), "--preset", "tiny", "--scheme", "ngram",
                 "--eval-steps", "2", "--validation-beams", "4"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scheme"] == "ngram" and {"sft", "ddro"} <= set(metrics["systems"])
    assert (out / "docids" / "spans" / "suffix_array.npy").is_file()
    capsys.readouterr()
    run = tmp_path / "sft.trec"
    assert main(["search", "--model", str(out / "model"), "--collection", str(beir), "--out", str(run),
                 "--beams", "8", "--k", "5"]) == 0
    lines = run.read_text().splitlines()
    doc_ids = {f"d{i}" for i in range(40)}
    assert lines and all(line.split()[2] in doc_ids for line in lines)
    from ddro.errors import DdroError
    from ddro.retrieval import GenerativeRetriever

    with pytest.raises(DdroError, match="n-gram docids"):
        GenerativeRetriever.load(out / "model").score_all(load_collection(beir).queries[:1])


def test_a_span_length_below_one_is_one_line(tmp_path, capsys):
    from conftest import assert_refused

    beir = write_beir(tmp_path / "tiny")
    out = tmp_path / "docids"
    status = main(["docids", "--collection", str(beir), "--scheme", "ngram", "--span-tokens", "0", "--out", str(out)])
    assert_refused(status, capsys, "--span-tokens", "must be at least 1", [out])


def test_ddro_pairs_score_first_spans_or_the_spans_matching_their_query(collection, table):
    from ddro.batching import DocidCollator
    from ddro.models import build_docid_model, get_preset
    from ddro.training.ddro import PairDataset
    from ddro.training.negatives import Pair

    model = build_docid_model(get_preset("tiny"), table, [d.full_text for d in collection.docs])
    pairs = [Pair("q1", "number 7", 7, 3), Pair("q2", "number 12", 12, 7)]
    first = PairDataset(pairs, model, "first")
    labels = DocidCollator(model, {"chosen": "chosen_labels", "rejected": "rejected_labels"})
    batch = labels([first[i] for i in range(2)])
    sequences = model.docid_sequences()
    assert batch["chosen_labels"][0, :7].tolist() == sequences[7][:7].tolist()
    matched = PairDataset(pairs, model, "matched")
    batch = labels([matched[i] for i in range(2)])
    seven, twelve = (table.vocab.index(t) for t in ("7", "12"))
    decoder = {int(t): c for c, t in enumerate(model.docid_token_ids)}
    chosen = [[decoder[int(t)] for t in row if t >= 0] for row in batch["chosen_labels"]]
    # The first start whose three tokens hold the query's rare word: two tokens before it.
    assert chosen[0].index(seven) == 2 and chosen[1].index(twelve) == 2
    assert batch["rejected_labels"][1].tolist()[:7] == matched[1]["rejected_target"].tolist()[:7]


@pytest.mark.slow
@needs_data("cranfield")
def test_run_tiny_with_ngram_docids_on_cranfield(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--collection", str(DATA / "cranfield"), "--out", str(out), "--preset", "tiny",
                 "--scheme", "ngram", "--no-ddro"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scheme"] == "ngram" and metrics["split"]["test_queries"] == 75
    lines = (out / "runs" / "sft.trec").read_text().splitlines()
    ranked = {line.split()[0] for line in lines}
    doc_ids = {d.doc_id for d in load_collection(DATA / "cranfield").docs}
    assert len(ranked) >= 70 and all(line.split()[2] in doc_ids for line in lines)
