"""The authors' released checkpoints and docid tables, offline: a tiny random T5 whose vocabulary is
a small base vocabulary + 24 x 256 PQ tokens, and tables written in the released layout."""

import json

import numpy as np
import pytest
import torch

from ddro.cli import main
from ddro.collections.base import Query
from ddro.released import PQ_CODES, PQ_SUBSPACES, load_released, released_doc_id

WORDS = ["wing lift", "heat flow", "shock waves", "boundary layer", "plate buckling", "swept wing",
         "composite slab", "flat plate", "supersonic corner", "thin plates", "subsonic stream", "shear loads"]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """`(folder, checkpoint, pq table, tu table, queries tsv, qrels, test set)`."""
    from transformers import T5Config, T5ForConditionalGeneration

    from ddro.models.tokenizer import train_subword_tokenizer

    folder = tmp_path_factory.mktemp("released")
    tokenizer = train_subword_tokenizer(WORDS, 120)
    base = len(tokenizer)
    config = T5Config(vocab_size=base + PQ_SUBSPACES * PQ_CODES, d_model=16, d_ff=32, num_layers=1,
                      num_decoder_layers=1, num_heads=2, d_kv=8, decoder_start_token_id=0, pad_token_id=0,
                      eos_token_id=1)
    torch.manual_seed(0)
    checkpoint = folder / "ddro-tiny-pq"
    T5ForConditionalGeneration(config).save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    rng = np.random.default_rng(0)
    pq_lines, tu_lines = [], []
    for i, words in enumerate(WORDS):
        codes = rng.integers(0, PQ_CODES, PQ_SUBSPACES)
        if i == 5:
            codes = previous  # a PQ collision: documents d4 and d5 share a docid
        previous = codes
        pq_lines.append(f"[D{i}]\t" + ",".join(str(base + PQ_CODES * m + int(c)) for m, c in enumerate(codes)))
        ids = tokenizer(words)["input_ids"] + [1]
        tu_lines.append(f"[d{i}]\t" + ",".join(map(str, ids)))
    (folder / "pq_docids.txt").write_text("\n".join(pq_lines) + "\n")
    (folder / "tu_docids.txt").write_text("\n".join(tu_lines) + "\n")
    queries = [(f"q{i}", f"What about {w}") for i, w in enumerate(WORDS[:6])]
    (folder / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in queries))
    (folder / "qrels.txt").write_text("".join(f"q{i} 0 D{i} 1\n" for i in range(6)))
    with open(folder / "test.json", "w") as fh:
        for i, (_, text) in enumerate(queries):
            ids = tokenizer(text.lower())["input_ids"]  # as the tokenizer encodes the TSV's queries
            fh.write(json.dumps({"query_id": f"[d{i}]", "doc_id": pq_lines[i].split("\t")[1], "input_ids": ids}) + "\n")
    return folder, checkpoint


def test_released_doc_ids_lose_brackets_case_and_blanks():
    assert released_doc_id("[D108472]") == "d108472"
    assert released_doc_id("[who sang it wikipedia]") == "who_sang_it_wikipedia"
    assert released_doc_id("d3") == "d3"


def test_tables_load_as_the_model_token_ids_without_added_tokens(released):
    folder, checkpoint = released
    pq = load_released(str(checkpoint), str(folder / "pq_docids.txt"))
    first = [int(x) for x in (folder / "pq_docids.txt").read_text().splitlines()[0].split("\t")[1].split(",")]
    assert pq.docid_sequences()[0].tolist() == first  # 24 ids as written: no EOS appended
    assert pq.table.doc_ids[:2] == ["d0", "d1"] and pq.table.scheme == "released-pq"
    assert pq.table.collision_groups == [[4, 5]]
    assert len(pq.tokenizer) + PQ_SUBSPACES * PQ_CODES == pq.model.config.vocab_size  # tokenizer untouched
    tu = load_released(str(checkpoint), str(folder / "tu_docids.txt"))
    assert tu.table.scheme == "released-tu" and all(row[row >= 0][-1] == 1 for row in tu.docid_sequences())


def test_search_finds_what_exhaustive_scoring_ranks_first(released):
    """Oracle: with a beam as wide as the table, beam search ranks exactly as scoring every docid."""
    from ddro.retrieval import GenerativeRetriever

    folder, checkpoint = released
    for table in ("pq_docids.txt", "tu_docids.txt"):
        retriever = GenerativeRetriever(load_released(str(checkpoint), str(folder / table)))
        queries = [Query(f"q{i}", f"What about {w}") for i, w in enumerate(WORDS)]
        beam = retriever.search(queries, k=len(WORDS), num_beams=len(WORDS), progress=False)
        exact = retriever.exhaustive_search(queries, k=len(WORDS), progress=False)
        for q in queries:
            assert beam[q.query_id][0][0] == exact[q.query_id][0][0]
            assert [d for d, _ in beam[q.query_id]] == [d for d, _ in exact[q.query_id]]
            np.testing.assert_allclose([s for _, s in beam[q.query_id]], [s for _, s in exact[q.query_id]],
                                       rtol=1e-4, atol=1e-4)


def test_search_and_eval_through_the_cli(released, tmp_path, capsys):
    folder, checkpoint = released
    run = tmp_path / "run.trec"
    assert main(["search", "--model", str(checkpoint), "--docids", str(folder / "pq_docids.txt"),
                 "--queries-file", str(folder / "queries.tsv"), "--out", str(run), "--k", "12", "--beams", "12"]) == 0
    lines = run.read_text().splitlines()
    assert {line.split()[0] for line in lines} == {f"q{i}" for i in range(6)}
    assert {line.split()[2] for line in lines} == {f"d{i}" for i in range(12)}  # both colliding docs too
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--qrels", str(folder / "qrels.txt")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["queries"] == 6 and report["measures"]["Success@10"] > 0  # D3 in the qrels matches d3
    from ddro.evaluation import evaluate
    from ddro.runs import read_trec_run

    expected = evaluate(read_trec_run(run), {f"q{i}": {f"d{i}": 1} for i in range(6)}, [f"q{i}" for i in range(6)])
    assert report["measures"] == expected["aggregate"]


def test_a_released_test_set_is_searched_as_token_ids_and_judged_per_line(released, tmp_path, capsys):
    folder, checkpoint = released
    run = tmp_path / "run.trec"
    args = ["search", "--model", str(checkpoint), "--docids", str(folder / "pq_docids.txt"), "--out", str(run),
            "--k", "12", "--beams", "12"]
    assert main(args + ["--queries-file", str(folder / "test.json")]) == 0
    from_ids = run.read_text()
    assert main(args[:-6] + ["--out", str(tmp_path / "q.trec"), "--k", "12", "--beams", "12",
                             "--queries-file", str(folder / "queries.tsv")]) == 0
    # The same queries, lower-cased and tokenized in the test set: the same rankings under line numbers.
    renamed = (tmp_path / "q.trec").read_text()
    for i in range(6):
        renamed = renamed.replace(f"q{i} Q0", f"{i + 1} Q0")
    assert from_ids == renamed
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--qrels", str(folder / "test.json")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert main(["eval", "--run", str(tmp_path / "q.trec"), "--qrels", str(folder / "qrels.txt")]) == 0
    assert report["queries"] == 6 and report["measures"] == json.loads(capsys.readouterr().out)["measures"]


@pytest.mark.parametrize("table,line_no,edit,message", [
    ("pq_docids.txt", 3, lambda line: line.replace(",", ",x", 1), "is not a non-negative integer"),
    ("pq_docids.txt", 2, lambda line: line.rsplit(",", 1)[0], "a PQ docid has 24 token ids, found 23"),
    ("pq_docids.txt", 4, lambda line: line.replace("\t", " "), "found 0 tabs"),
    ("pq_docids.txt", 5, lambda line: line + ",999999", "beyond the model's vocabulary"),
    ("pq_docids.txt", 2, lambda line: line.split("\t")[0] + "\t" + ",".join(reversed(line.split("\t")[1].split(","))),
     "not a code of PQ sub-space 1"),
    ("tu_docids.txt", 3, lambda line: line.rsplit(",", 1)[0], "ends in EOS"),
    ("tu_docids.txt", 2, lambda line: line.split("\t")[0] + "\t" + str(10**6) + ",1", "beyond the model's vocabulary"),
    ("pq_docids.txt", 6, lambda line: "[d0]\t" + line.split("\t")[1], "already has a docid on line 1"),
])
def test_a_wrong_table_is_one_line_naming_file_and_line(released, tmp_path, capsys, table, line_no, edit, message):
    folder, checkpoint = released
    lines = (folder / table).read_text().splitlines()
    lines[line_no - 1] = edit(lines[line_no - 1])
    bad = tmp_path / table
    bad.write_text("\n".join(lines) + "\n")
    assert main(["search", "--model", str(checkpoint), "--docids", str(bad), "--queries-file",
                 str(folder / "queries.tsv"), "--out", str(tmp_path / "run.trec")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ddro: error: {bad}:{line_no}: ") and message in err[0]
    assert not (tmp_path / "run.trec").exists()


@pytest.mark.parametrize("table", ["pq_docids.txt", "tu_docids.txt"])
def test_a_truncated_table_names_its_last_line(released, tmp_path, capsys, table):
    folder, checkpoint = released
    text = (folder / table).read_text()
    bad = tmp_path / table
    bad.write_text(text[: len(text) - 9])  # the last line cut inside its ids
    assert main(["search", "--model", str(checkpoint), "--docids", str(bad), "--queries-file",
                 str(folder / "queries.tsv"), "--out", str(tmp_path / "run.trec")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ddro: error: {bad}:{len(WORDS)}: ") and "truncated" in err[0]


def test_an_unreachable_hub_model_or_table_is_one_clear_line(released, tmp_path, capsys, monkeypatch):
    folder, checkpoint = released
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    common = ["--queries-file", str(folder / "queries.tsv"), "--out", str(tmp_path / "run.trec")]
    assert main(["search", "--model", "ddro-tests/no-such-model", "--docids", str(folder / "pq_docids.txt")] + common) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ddro-tests/no-such-model" in err[0] and "hub is not reachable" in err[0]
    assert main(["search", "--model", str(checkpoint), "--docids",
                 "hf://datasets/ddro-tests/no-such-docids/pq_msmarco_docids.txt"] + common) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be fetched from the Hugging Face hub" in err[0]


def test_a_test_set_needs_a_released_model(released, tmp_path, capsys):
    folder, _ = released
    assert main(["search", "--model", str(tmp_path), "--queries-file", str(folder / "test.json"),
                 "--out", str(tmp_path / "r.trec")]) == 2
    assert "--docids" in capsys.readouterr().err
    assert main(["search", "--model", str(tmp_path), "--out", str(tmp_path / "r.trec")]) == 2
    assert "either --collection or --queries-file" in capsys.readouterr().err
