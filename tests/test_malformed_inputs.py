"""Every reader against a battery of malformed inputs, through the command a user runs.

Each case damages one valid input and runs the `ddro` command that reads it: the command must
end with exit status 2 and one line on stderr naming the file (and line) and what is wrong, and
leave no output behind. Where the damage is a line that `--lenient` may skip, the same command
with `--lenient` must then succeed and say what it skipped.
"""

import gzip
import json
import re
import shutil
from collections import Counter

import numpy as np
import pytest

from ddro.cli import main
from ddro.runs import write_trec_run

from conftest import assert_refused, write_beir

# --- ways to damage a file, relative to the folder a case starts from ---------------------------


def appended(name, data: bytes):
    def damage(root):
        with open(root / name, "ab") as fh:
            fh.write(data)
    return damage


def written(name, data: bytes):
    return lambda root: (root / name).write_bytes(data)


def removed(name):
    return lambda root: shutil.rmtree(root / name) if (root / name).is_dir() else (root / name).unlink()


def edited(name, change):
    """`change(text) -> text` applied to a text file."""
    return lambda root: (root / name).write_text(change((root / name).read_text(encoding="utf-8")), encoding="utf-8")


def edited_json(name, **fields):
    """Fields of a JSON object file set (to None: removed)."""
    def change(text):
        record = json.loads(text)
        record.update(fields)
        return json.dumps({key: value for key, value in record.items() if value is not None})
    return edited(name, change)


def edited_array(name, change):
    """`change(array) -> array` applied to a `.npy` file."""
    return lambda root: np.save(root / name, change(np.load(root / name)))


def on_line(number, change):
    """`change(line) -> line` applied to one line of a text."""
    def edit(text):
        lines = text.split("\n")
        lines[number - 1] = change(lines[number - 1])
        return "\n".join(lines)
    return edit


def unrecorded(*damages):
    """The damages, then every `checksums.json` removed, as in a folder from before ddro kept
    them: what the reader itself must catch."""
    def damage(root):
        for step in damages:
            step(root)
        for record in root.rglob("checksums.json"):
            record.unlink()
    return damage


def half_of(name):
    def damage(root):
        data = (root / name).read_bytes()
        (root / name).write_bytes(data[: len(data) // 2])
    return damage


BINARY = gzip.compress(b"a gzip file under a plain name", mtime=0)  # its header holds NUL bytes
RULE = b"*" * 44 + b"\n"

# --- the valid inputs each reader starts from, and the command that reads them -----------------


def write_msmarco(folder):
    folder.mkdir()
    (folder / "msmarco-docs.tsv").write_text("".join(f"D{i}\thttp://example.org/{i}\tTitle {i}\tBody of document {i}\n"
                                                     for i in range(1, 7)))
    (folder / "queries.train.tsv").write_text("1\tfirst query\n2\tsecond query\n")
    (folder / "queries.dev.tsv").write_text("3\tthird query\n4\tfourth query\n")
    (folder / "qrels.train.tsv").write_text("1 0 D1 1\n2 0 D2 1\n")
    (folder / "qrels.dev.tsv").write_text("3 0 D3 1\n4 0 D4 1\n")
    return folder


CLASSIC = {
    "cranfield": {"cran.all.1400": ".I 1\n.T\nwing lift\n.W\nlift of swept wings\n.I 2\n.T\nheat flow\n.W\n"
                                   "transient heat conduction\n",
                  "cran.qry": ".I 001\n.W\nwhat about lift\n.I 002\n.W\nwhat about heat\n",
                  "cranqrel": "1 1 2\n2 2 1\n"},
    "npl": {"doc-text": "1\nlift of swept wings\n   /\n2\nheat conduction\n   /\n",
            "query-text": "1\nLIFT OF WINGS\n   /\n2\nHEAT\n   /\n",
            "rlv-ass": "1\n    1\n   /\n2\n    2\n   /\n"},
    "lisa": {"LISA0.001": "Document  1\nWING LIFT\n\nlift of swept wings\n" + RULE.decode()
                          + "Document  2\nHEAT FLOW\n\nheat conduction\n" + RULE.decode(),
             "LISA.QUE": "1\nWHAT ABOUT LIFT #\n2\nWHAT ABOUT HEAT #\n",
             "LISARJ.NUM": "1 1 1\n2 1 2\n"},
}


def write_classic(folder, name):
    folder.mkdir()
    for file, text in CLASSIC[name].items():
        (folder / file).write_text(text)
    return folder


@pytest.fixture(scope="module")
def tabled(tmp_path_factory):
    """A BEIR collection and a pq docid table of it."""
    root = tmp_path_factory.mktemp("tabled")
    collection = write_beir(root / "beir")
    assert main(["docids", "--collection", str(collection), "--scheme", "pq", "--encoder", "lsa:16", "--pq-m", "4",
                 "--pq-k", "8", "--out", str(root / "table")]) == 0
    return collection, root / "table"


@pytest.fixture(scope="module")
def tiny_model(tiny, tmp_path_factory):
    """The `tiny` model saved, and the collection it was made for."""
    collection, model = tiny
    folder = tmp_path_factory.mktemp("model") / "model"
    model.save(folder)
    return collection.source, folder


def docids_of(write):
    """`ddro docids` on the collection `write(tmp_path)` makes: it reads all of it, then writes a table."""
    def setup(tmp_path, request):
        root, out = write(tmp_path), tmp_path / "out"
        return root, ["docids", "--collection", str(root), "--scheme", "atomic", "--out", str(out)], [out]
    return setup


def eval_run(tmp_path, request):
    root = tmp_path / "eval"
    write_beir(root / "beir")
    write_trec_run({"q1": [("d1", 2.0), ("d6", 1.0)]}, root / "run.trec", "t")
    return root, ["eval", "--collection", str(root / "beir"), "--run", str(root / "run.trec")], []


def eval_qrels(tmp_path, request):
    root = tmp_path / "eval"
    root.mkdir()
    (root / "qrels.txt").write_text("q1 0 d1 1\nq3 0 d3 1\n")
    write_trec_run({"q1": [("d1", 2.0), ("d6", 1.0)]}, root / "run.trec", "t")
    return root, ["eval", "--qrels", str(root / "qrels.txt"), "--run", str(root / "run.trec")], []


def sft_with_pseudo_queries(tmp_path, request):
    collection, table = request.getfixturevalue("tabled")
    root, out = tmp_path / "pq", tmp_path / "out"
    root.mkdir()
    (root / "pq.tsv").write_text("d0\tfirst query\nd1\tsecond query\n")
    return root, ["train", "sft", "--collection", str(collection), "--docids", str(table), "--out", str(out),
                  "--preset", "tiny", "--pseudo-queries-file", str(root / "pq.tsv")], [out]


def sft_with_table(tmp_path, request):
    collection, table = request.getfixturevalue("tabled")
    root, out = tmp_path / "table", tmp_path / "out"
    shutil.copytree(table, root)
    return root, ["train", "sft", "--collection", str(collection), "--docids", str(root), "--out", str(out),
                  "--preset", "tiny"], [out]


def search_with_model(tmp_path, request):
    collection, model = request.getfixturevalue("tiny_model")
    root, out = tmp_path / "model", tmp_path / "run.trec"
    shutil.copytree(model, root)
    return root, ["search", "--collection", collection, "--model", str(root), "--out", str(out)], [out]


SETUPS = {
    "beir": docids_of(lambda tmp: write_beir(tmp / "beir")),
    "msmarco": docids_of(lambda tmp: write_msmarco(tmp / "marco")),
    **{f"classic/{name}": docids_of(lambda tmp, name=name: write_classic(tmp / name, name)) for name in CLASSIC},
    "run": eval_run,
    "qrels": eval_qrels,
    "pseudo-queries": sft_with_pseudo_queries,
    "docid-table": sft_with_table,
    "model": search_with_model,
}


def case(reader, kind, damage, where, problem, lenient=None):
    """`damage` to `reader`'s input must end its command with one line starting `where` (`{root}`:
    the input's folder) and holding `problem`; `lenient`: the lines `--lenient` then skips (None:
    it must still fail, or does not apply)."""
    return pytest.param(reader, damage, where, problem, lenient, id=f"{reader}:{kind}")


CASES = [
    # BEIR: corpus.jsonl (40 lines), queries.jsonl (10), qrels/test.tsv (a header and 10 lines)
    case("beir", "missing file", removed("queries.jsonl"), "{root}/queries.jsonl", "file not found"),
    case("beir", "empty corpus", written("corpus.jsonl", b""), "{root}/corpus.jsonl", "no documents"),
    case("beir", "blank queries", written("queries.jsonl", b"\n \n"), "{root}/queries.jsonl", "no queries"),
    case("beir", "qrels header only", written("qrels/test.tsv", b"query-id\tcorpus-id\tscore\n"),
         "{root}/qrels/test.tsv", "no judgments"),
    case("beir", "truncated last line", appended("corpus.jsonl", b'{"_id": "d40", "title": "wing'),
         "{root}/corpus.jsonl:41", "malformed JSON", 1),
    case("beir", "not an object", appended("corpus.jsonl", b"[1, 2]\n"), "{root}/corpus.jsonl:41",
         "record has no '_id' field", 1),
    case("beir", "id of another type", appended("corpus.jsonl", b'{"_id": ["a"], "text": "x"}\n'),
         "{root}/corpus.jsonl:41", "'_id' must be a string or an integer", 1),
    case("beir", "text of another type", appended("corpus.jsonl", b'{"_id": "d40", "text": 7}\n'),
         "{root}/corpus.jsonl:41", "field 'text' is not a string", 1),
    case("beir", "not UTF-8", appended("queries.jsonl", b'{"_id": "q10", "text": "caf\xe9"}\n'),
         "{root}/queries.jsonl:11", "not UTF-8 text (byte 0xe9", 1),
    case("beir", "binary", written("corpus.jsonl", BINARY), "{root}/corpus.jsonl:1", "NUL byte"),
    case("beir", "empty document", appended("corpus.jsonl", b'{"_id": "d40", "title": "", "text": " "}\n'),
         "{root}/corpus.jsonl:41", "document 'd40' is empty", 1),
    case("beir", "empty query", appended("queries.jsonl", b'{"_id": "q10", "text": ""}\n'),
         "{root}/queries.jsonl:11", "query 'q10' has no text", 1),
    case("beir", "duplicate id", appended("corpus.jsonl", b'{"_id": "d3", "text": "again"}\n'),
         "{root}/corpus.jsonl:41", "duplicate document id 'd3' (first at {root}/corpus.jsonl:4)", 1),
    case("beir", "blank id", appended("corpus.jsonl", b'{"_id": "  ", "text": "x"}\n'),
         "{root}/corpus.jsonl:41", "empty document id", 1),
    case("beir", "id with white space", appended("queries.jsonl", b'{"_id": "q\\t1", "text": "x"}\n'),
         "{root}/queries.jsonl:11", "query id 'q\\t1' holds white space", 1),
    case("beir", "unknown document", appended("qrels/test.tsv", b"q1\tnope\t1\n"), "{root}/qrels/test.tsv:12",
         "judgment names unknown document 'nope'", 1),
    case("beir", "unknown query", appended("qrels/test.tsv", b"q99\td1\t1\n"), "{root}/qrels/test.tsv:12",
         "judgment names unknown query 'q99'", 1),
    case("beir", "grade not a number", appended("qrels/test.tsv", b"q1\td2\tnan\n"), "{root}/qrels/test.tsv:12",
         "score 'nan' is not an integer", 1),
    case("beir", "qrels field count", appended("qrels/test.tsv", b"q1\td2\n"), "{root}/qrels/test.tsv:12",
         "expected 'query-id<TAB>corpus-id<TAB>score'", 1),
    case("beir", "conflicting grades", appended("qrels/test.tsv", b"q1\td1\t2\n"), "{root}/qrels/test.tsv:12",
         "conflicting judgment for query 'q1', document 'd1'", 1),

    # MS MARCO TSV: msmarco-docs.tsv (6 lines), queries and qrels .train/.dev (2 lines each)
    case("msmarco", "missing queries", lambda root: [removed(f"queries.{p}.tsv")(root) for p in ("train", "dev")],
         "{root}", "no queries file"),
    case("msmarco", "empty documents file", written("msmarco-docs.tsv", b""), "{root}/msmarco-docs.tsv",
         "no documents"),
    case("msmarco", "empty queries file", written("queries.dev.tsv", b""), "{root}/queries.dev.tsv", "no queries"),
    case("msmarco", "blank qrels file", written("qrels.dev.tsv", b"\n"), "{root}/qrels.dev.tsv", "no judgments"),
    case("msmarco", "truncated last line", appended("msmarco-docs.tsv", b"D7\thttp://example.org/7\tTitle seven"),
         "{root}/msmarco-docs.tsv:7", "expected 4 tab-separated columns, got 3", 1),
    case("msmarco", "query field count", appended("queries.dev.tsv", b"5\tq\textra\n"), "{root}/queries.dev.tsv:3",
         "expected 'qid<TAB>text', got 3 columns", 1),
    case("msmarco", "not UTF-8", appended("msmarco-docs.tsv", b"D7\thttp://x.org\tcaf\xe9\tbody\n"),
         "{root}/msmarco-docs.tsv:7", "not UTF-8 text", 1),
    case("msmarco", "binary", written("msmarco-docs.tsv", BINARY), "{root}/msmarco-docs.tsv:1", "NUL byte"),
    case("msmarco", "empty document", appended("msmarco-docs.tsv", b"D7\t\t \t\n"), "{root}/msmarco-docs.tsv:7",
         "document 'D7' is empty", 1),
    case("msmarco", "duplicate id", appended("msmarco-docs.tsv", b"D1\thttp://x.org\tT\tB\n"),
         "{root}/msmarco-docs.tsv:7", "duplicate document id 'D1'", 1),
    case("msmarco", "blank id", appended("msmarco-docs.tsv", b"\thttp://x.org\tT\tB\n"), "{root}/msmarco-docs.tsv:7",
         "empty document id", 1),
    case("msmarco", "query id in both parts", appended("queries.dev.tsv", b"1\tagain\n"), "{root}/queries.train.tsv:1",
         "duplicate query id '1' (first at {root}/queries.dev.tsv:3)", 1),
    case("msmarco", "empty query", appended("queries.dev.tsv", b"5\t \n"), "{root}/queries.dev.tsv:3",
         "query '5' has no text", 1),
    case("msmarco", "unknown document", appended("qrels.dev.tsv", b"3 0 D99 1\n"), "{root}/qrels.dev.tsv:3",
         "judgment names unknown document 'D99'", 1),
    case("msmarco", "grade not an integer", appended("qrels.dev.tsv", b"3 0 D3 1.5\n"), "{root}/qrels.dev.tsv:3",
         "relevance '1.5' is not an integer", 1),
    case("msmarco", "truncated qrels line", appended("qrels.dev.tsv", b"4 0 D4"), "{root}/qrels.dev.tsv:3",
         "expected TREC qrels 'qid iter docid rel'", 1),

    # Classic collections: each folder as `CLASSIC` writes it
    case("classic/cranfield", "missing file", removed("cran.qry"), "{root}/cran.qry", "file not found"),
    case("classic/cranfield", "empty documents file", written("cran.all.1400", b""), "{root}/cran.all.1400",
         "no documents"),
    case("classic/cranfield", "malformed header", appended("cran.all.1400", b".I 3 4\n"), "{root}/cran.all.1400:11",
         "malformed record header"),
    case("classic/cranfield", "text outside a field", written("cran.qry", b"what about lift\n"), "{root}/cran.qry:1",
         "text outside a record field"),
    case("classic/cranfield", "id not a number", appended("cran.all.1400", b".I x3\n.W\ntext\n"),
         "{root}/cran.all.1400:11", "document id 'x3' is not a number"),
    case("classic/cranfield", "duplicate id", appended("cran.all.1400", b".I 1\n.W\nagain\n"),
         "{root}/cran.all.1400:11", "duplicate document id '1'", 1),
    case("classic/cranfield", "code out of range", appended("cranqrel", b"1 2 7\n"), "{root}/cranqrel:3",
         "relevance code 7 is not -1 or 1..4", 1),
    case("classic/cranfield", "truncated last line", appended("cranqrel", b"2 1"), "{root}/cranqrel:3",
         "expected 'query doc code'", 1),
    case("classic/cranfield", "unknown document", appended("cranqrel", b"1 9 2\n"), "{root}/cranqrel:3",
         "judgment names unknown document '9'", 1),
    case("classic/cranfield", "binary", appended("cranqrel", b"\x00\x01\x02\n"), "{root}/cranqrel:3", "NUL byte", 1),
    case("classic/npl", "last block not ended", appended("doc-text", b"3\nunfinished"), "{root}/doc-text:7",
         "last block is not ended by '/'"),
    case("classic/npl", "id not a number", appended("doc-text", b"x3\ntext\n   /\n"), "{root}/doc-text:7",
         "expected a numeric doc id"),
    case("classic/npl", "judgment not a number", appended("rlv-ass", b"3\n  a b\n   /\n"), "{root}/rlv-ass:7",
         "expected numbers"),
    case("classic/npl", "empty query", appended("query-text", b"3\n   /\n"), "{root}/query-text:7",
         "query '3' has no text", 1),
    case("classic/lisa", "empty queries file", written("LISA.QUE", b""), "{root}/LISA.QUE", "no queries"),
    case("classic/lisa", "query not ended", appended("LISA.QUE", b"3\nNO END\n"), "{root}/LISA.QUE:5",
         "query 3 is not ended by '#'"),
    case("classic/lisa", "repeated record, other text", appended("LISA0.001", b"Document  1\nOTHER\n\ntext\n" + RULE),
         "{root}/LISA0.001:11", "document 1 repeats with different text"),
    case("classic/lisa", "short judgment list", appended("LISARJ.NUM", b"2 3 1\n"), "{root}/LISARJ.NUM:3",
         "query 2 lists fewer than 3 document numbers"),

    # TREC run files read by `ddro eval` (two lines, for query q1)
    case("run", "missing file", removed("run.trec"), "{root}/run.trec", "file not found"),
    case("run", "empty file", written("run.trec", b""), "{root}/run.trec", "no run lines to evaluate"),
    case("run", "truncated last line", appended("run.trec", b"q1 Q0 d2 3"), "{root}/run.trec:3",
         "a run line has 6 columns", 1),
    case("run", "extra column", appended("run.trec", b"q1 Q0 d2 3 0.5 t x\n"), "{root}/run.trec:3", "found 7", 1),
    case("run", "score not a number", appended("run.trec", b"q1 Q0 d2 3 high t\n"), "{root}/run.trec:3",
         "rank must be an integer and score a number", 1),
    case("run", "score NaN", appended("run.trec", b"q1 Q0 d2 3 nan t\n"), "{root}/run.trec:3",
         "score 'nan' is not a finite number", 1),
    case("run", "score infinite", appended("run.trec", b"q1 Q0 d2 3 -inf t\n"), "{root}/run.trec:3",
         "score '-inf' is not a finite number", 1),
    case("run", "rank not an integer", appended("run.trec", b"q1 Q0 d2 3.5 0.5 t\n"), "{root}/run.trec:3",
         "rank must be an integer", 1),
    case("run", "negative rank", appended("run.trec", b"q1 Q0 d2 -3 0.5 t\n"), "{root}/run.trec:3",
         "rank -3 is negative", 1),
    case("run", "repeated document", appended("run.trec", b"q1 Q0 d1 3 0.5 t\n"), "{root}/run.trec:3",
         "document d1 appears twice for query q1", 1),
    case("run", "unknown query", appended("run.trec", b"zzz Q0 d1 1 1.0 t\n"), "{root}/run.trec",
         "1 query ids are not in", 1),
    case("run", "unknown document", appended("run.trec", b"q1 Q0 nope 3 0.5 t\n"), "{root}/run.trec",
         "1 document ids are not in", 1),
    case("run", "not UTF-8", appended("run.trec", b"q1 Q0 d\xe9 3 0.5 t\n"), "{root}/run.trec:3", "not UTF-8 text", 1),
    case("run", "binary", written("run.trec", BINARY), "{root}/run.trec:1", "NUL byte"),
    case("run", "split record not JSON", written("run.trec.split.json", b"{"), "{root}/run.trec.split.json",
         "not JSON"),
    case("run", "split record without split", written("run.trec.split.json", b'{"queries": "test"}'),
         "{root}/run.trec.split.json", "no 'split' record"),

    # qrels given to `ddro eval --qrels` (two judgments), TREC or a released test set
    case("qrels", "missing file", removed("qrels.txt"), "{root}/qrels.txt", "file not found"),
    case("qrels", "empty file", written("qrels.txt", b""), "{root}/qrels.txt", "no judgments"),
    case("qrels", "truncated last line", appended("qrels.txt", b"q5 0 d5"), "{root}/qrels.txt:3",
         "expected TREC qrels", 1),
    case("qrels", "extra field", appended("qrels.txt", b"q5 0 d5 1 x\n"), "{root}/qrels.txt:3",
         "expected TREC qrels", 1),
    case("qrels", "grade not a number", appended("qrels.txt", b"q5 0 d5 high\n"), "{root}/qrels.txt:3",
         "relevance 'high' is not an integer", 1),
    case("qrels", "grade NaN", appended("qrels.txt", b"q5 0 d5 nan\n"), "{root}/qrels.txt:3",
         "relevance 'nan' is not an integer", 1),
    case("qrels", "grade a fraction", appended("qrels.txt", b"q5 0 d5 1.5\n"), "{root}/qrels.txt:3",
         "relevance '1.5' is not an integer", 1),
    case("qrels", "not UTF-8", appended("qrels.txt", b"q5 0 d\xe9 1\n"), "{root}/qrels.txt:3", "not UTF-8 text", 1),
    case("qrels", "binary", written("qrels.txt", BINARY), "{root}/qrels.txt:1", "NUL byte"),
    case("qrels", "nothing relevant", written("qrels.txt", b"q1 0 d1 0\n"), "{root}/qrels.txt",
         "no query with a relevant judgment"),
    case("qrels", "test set: truncated JSON",
         written("qrels.txt", b'{"query_id": "[d1]", "input_ids": [1, 2]}\n{"query_id": "[d3]", "input_ids": [3'),
         "{root}/qrels.txt:2", "not a JSON line of a released test set", 1),
    case("qrels", "test set: token ids of another type", written("qrels.txt", b'{"query_id": "[d1]", "input_ids": "x"}\n'),
         "{root}/qrels.txt:1", "'input_ids' must be a non-empty list of token ids"),

    # --pseudo-queries-file of `ddro train sft` (two lines)
    case("pseudo-queries", "missing file", removed("pq.tsv"), "{root}/pq.tsv", "pseudo-queries file not found"),
    case("pseudo-queries", "empty file", written("pq.tsv", b""), "{root}/pq.tsv", "(an empty file)"),
    case("pseudo-queries", "blank lines only", written("pq.tsv", b"\n \n\n"), "{root}/pq.tsv", "(an empty file)"),
    case("pseudo-queries", "truncated last line", appended("pq.tsv", b"d2"), "{root}/pq.tsv:3",
         "expected 'doc_id<TAB>query', found 0 tabs"),
    case("pseudo-queries", "two tabs", appended("pq.tsv", b"d2\tq\textra\n"), "{root}/pq.tsv:3", "found 2 tabs"),
    case("pseudo-queries", "empty query", appended("pq.tsv", b"d2\t  \n"), "{root}/pq.tsv:3", "empty query"),
    case("pseudo-queries", "empty doc id", appended("pq.tsv", b"\tquery\n"), "{root}/pq.tsv:3", "empty doc id"),
    case("pseudo-queries", "not UTF-8", appended("pq.tsv", b"d2\tcaf\xe9\n"), "{root}/pq.tsv:3", "not UTF-8 text"),
    case("pseudo-queries", "binary", written("pq.tsv", BINARY), "{root}/pq.tsv:1", "NUL byte"),
    case("pseudo-queries", "another collection's", written("pq.tsv", b"x1\tquery\nx2\tquery\n"), "{root}/pq.tsv",
         "no line names a document of the collection (first doc id: 'x1'"),

    # the docid table `ddro train sft --docids` reads (pq, 40 documents)
    case("docid-table", "missing folder", lambda root: shutil.rmtree(root), "{root}/table.json", "not found"),
    case("docid-table", "edited, its record kept", edited("docids.tsv", lambda t: t.replace("d1\t", "dX\t")),
         "{root}/docids.tsv", "changed since"),
    case("docid-table", "table.json not JSON", unrecorded(written("table.json", b"{bad")), "{root}/table.json",
         "not JSON"),
    case("docid-table", "table.json without scheme", unrecorded(edited_json("table.json", scheme=None)),
         "{root}/table.json", "'scheme' must be a str"),
    case("docid-table", "vocab.json not a list", unrecorded(written("vocab.json", b'{"a": 1}')), "{root}/vocab.json",
         "expected a JSON list"),
    case("docid-table", "codes.npy missing", unrecorded(removed("codes.npy")), "{root}/codes.npy", "file not found"),
    case("docid-table", "codes.npy garbage", unrecorded(written("codes.npy", b"\x93NUMPY garbage")),
         "{root}/codes.npy", "not a numpy array file"),
    case("docid-table", "codes of another shape", unrecorded(edited_array("codes.npy", lambda a: a[:, 0])),
         "{root}/codes.npy", "expected a [documents, docid length] array, found shape (40,)"),
    case("docid-table", "codes of another type", unrecorded(edited_array("codes.npy", lambda a: a.astype(np.float32))),
         "{root}/codes.npy", "expected integer codes, found float32"),
    case("docid-table", "code outside the vocabulary",
         unrecorded(edited_array("codes.npy", lambda a: np.where(a >= 0, a + 10_000, a))), "{root}/codes.npy",
         "outside the vocabulary"),
    case("docid-table", "code after padding", unrecorded(edited_array("codes.npy", lambda a: np.where(
        np.arange(a.shape[1]) == 0, -1, a))), "{root}/codes.npy", "row 0 holds a code after padding"),
    case("docid-table", "fewer codes than documents", unrecorded(edited_array("codes.npy", lambda a: a[:-1])),
         "{root}", "docids.tsv names 40 documents but codes.npy has 39 rows"),
    case("docid-table", "garbled docids.tsv line", unrecorded(edited("docids.tsv", on_line(5, lambda l: l.replace("\t", " ")))),
         "{root}/docids.tsv:5", "expected 3 tab-separated fields"),
    case("docid-table", "repeated document", unrecorded(edited("docids.tsv", on_line(5, lambda l: "d0" + l[2:]))),
         "{root}/docids.tsv:5", "document 'd0' is already on line 2"),
    case("docid-table", "docids.tsv not UTF-8",
         unrecorded(lambda root: (root / "docids.tsv").write_bytes((root / "docids.tsv").read_bytes() + b"d\xe9\t\tx\n")),
         "{root}/docids.tsv", "not UTF-8 text"),
    case("docid-table", "collision of an unknown document",
         unrecorded(written("collisions.tsv", b"group\tdoc_ids\n0\tzz d1\n")), "{root}/collisions.tsv:2",
         "document 'zz' is not in docids.tsv"),
    case("docid-table", "another collection's",  # document d1 renamed: a document the collection lacks
         unrecorded(*(edited(name, lambda t: re.sub(r"\bd1\b", "dX", t)) for name in ("docids.tsv", "collisions.tsv"))),
         "{root}", "made for another collection"),

    # the model folder `ddro search --model` reads (the `tiny` model)
    case("model", "missing folder", lambda root: shutil.rmtree(root), "{root}", "not a ddro model folder"),
    case("model", "ddro_model.json not JSON", unrecorded(written("ddro_model.json", b"{bad")),
         "{root}/ddro_model.json", "not JSON"),
    case("model", "ddro_model.json edited, its record kept", edited_json("ddro_model.json", max_input_tokens=8),
         "{root}/ddro_model.json", "changed since"),
    case("model", "ddro_model.json without EOS", unrecorded(edited_json("ddro_model.json", eos_token_id=None)),
         "{root}/ddro_model.json", "'eos_token_id' must be an integer, found None"),
    case("model", "unknown architecture", unrecorded(edited_json("ddro_model.json", architecture="gpt")),
         "{root}/ddro_model.json", "unknown architecture 'gpt'"),
    case("model", "truncated weights", unrecorded(half_of("model/model.safetensors")), "{root}",
         "unreadable model folder"),
    case("model", "truncated weights, their record kept", half_of("model/model.safetensors"),
         "{root}/model/model.safetensors", "changed since"),
    case("model", "tokenizer missing", unrecorded(removed("tokenizer")), "{root}", "unreadable model folder"),
    case("model", "tokenizer missing, its record kept", removed("tokenizer"), "{root}/tokenizer", "missing from"),
    case("model", "docids/codes.npy missing, its record kept", removed("docids/codes.npy"), "{root}/docids/codes.npy",
         "missing from"),
    case("model", "checksums.json garbled", written("checksums.json", b"["), "{root}/checksums.json", "unreadable"),
    case("model", "fewer docid token ids", unrecorded(edited_array("docid_token_ids.npy", lambda a: a[:-1])),
         "{root}/docid_token_ids.npy", "token ids for the"),
    case("model", "docid token id beyond the decoder",
         unrecorded(edited_array("docid_token_ids.npy", lambda a: np.where(np.arange(len(a)) == 0, 10**6, a))),
         "{root}/docid_token_ids.npy", "token id 1000000 is outside the decoder's vocabulary"),
    case("model", "docid token ids of another type",
         unrecorded(edited_array("docid_token_ids.npy", lambda a: a.astype(np.float64))),
         "{root}/docid_token_ids.npy", "expected a list of integer token ids"),
    case("model", "a table of a larger vocabulary in docids/",
         unrecorded(edited("docids/vocab.json", lambda t: json.dumps(json.loads(t) + ["<extra>"]))),
         "{root}/docid_token_ids.npy", "(docids/ is not the table this model was trained on)"),
    case("model", "codes of another shape in docids/",
         unrecorded(edited_array("docids/codes.npy", lambda a: a[:, 0])), "{root}/docids/codes.npy",
         "expected a [documents, docid length] array"),
]

@pytest.fixture
def no_training(monkeypatch):
    """A damaged input that is accepted would start SFT: the test fails there instead of training."""
    def refuse(*args, **kwargs):
        raise AssertionError("training started: the damaged input was accepted")

    monkeypatch.setattr("ddro.training.sft.train_sft", refuse)


@pytest.mark.parametrize("reader,damage,where,problem,lenient", CASES)
def test_malformed_input_is_one_line_exit_2_and_leaves_no_output(reader, damage, where, problem, lenient, tmp_path,
                                                                  capsys, request, no_training):
    root, argv, outputs = SETUPS[reader](tmp_path, request)
    damage(root)
    capsys.readouterr()  # what building the valid inputs printed
    where, problem = where.format(root=root), problem.format(root=root)
    assert_refused(main(argv), capsys, where, problem, outputs)
    if lenient is not None:
        assert main(argv + ["--lenient"]) == 0
        err = capsys.readouterr().err.strip().splitlines()
        file = re.sub(r":\d+$", "", where)
        assert len(err) == 1 and err[0].startswith(f"ddro: skipped {lenient} malformed line"), err
        assert f" of {file} (first: {where}" in err[0] and problem in err[0], err


def test_every_reader_meets_at_least_ten_kinds_of_malformed_input():
    kinds = Counter(param.values[0].split("/")[0] for param in CASES)
    assert set(kinds) == {reader.split("/")[0] for reader in SETUPS}
    assert min(kinds.values()) >= 10, kinds


def test_lenient_on_clean_input_says_nothing_was_skipped(beir_dir, capsys):
    assert main(["inspect", "--collection", str(beir_dir), "--lenient"]) == 0
    assert capsys.readouterr().err.strip().splitlines() == ["ddro: --lenient: no line skipped"]


def test_lenient_keeps_the_first_of_repeated_records_and_counts_every_skipped_line(beir_dir, capsys):
    appended("corpus.jsonl", b'{"_id": "d3", "text": "again"}\n{"_id": "d4", "text": "again"}\n')(beir_dir)
    appended("qrels/test.tsv", b"q1\tnope\t1\nq3\tnope\t1\n")(beir_dir)
    assert main(["inspect", "--collection", str(beir_dir), "--lenient"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["documents"] == 40
    assert captured.err.strip().splitlines() == [
        f"ddro: skipped 2 malformed lines of {beir_dir}/corpus.jsonl (first: {beir_dir}/corpus.jsonl:41: "
        f"duplicate document id 'd3' (first at {beir_dir}/corpus.jsonl:4))",
        f"ddro: skipped 2 malformed lines of {beir_dir}/qrels/test.tsv (first: {beir_dir}/qrels/test.tsv:12: "
        "judgment names unknown document 'nope')"]
