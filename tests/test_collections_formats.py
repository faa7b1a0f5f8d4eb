"""The BEIR, MS MARCO and ir_datasets readers, the split rule, and bad input."""

import sys
import types

import pytest

from ddro.collections import load_collection
from ddro.collections.base import fraction_split
from ddro.errors import DdroError

from conftest import write_beir


def test_beir_given_split_and_fields(beir_dir):
    c = load_collection(beir_dir)
    assert len(c.docs) == 40 and len(c.queries) == 10 and len(c.qrels) == 20
    assert c.docs[0].title == "wing lift study 0" and c.docs[0].url.endswith("/wing-lift/report-0.html")
    assert c.split.rule.startswith("given(")
    assert set(c.split.train) == {f"q{q}" for q in range(0, 10, 2)}
    assert set(c.split.test) == {f"q{q}" for q in range(1, 10, 2)}
    assert c.qrels_dict(["q1"]) == {"q1": {"d1": 1, "d6": 2}}


def test_beir_test_only_means_all_test_unless_fraction(tmp_path):
    folder = write_beir(tmp_path / "t", splits=("test",))
    c = load_collection(folder)
    assert c.split.train == () and len(c.split.test) == 10
    c = load_collection(folder, test_fraction=0.3)
    assert (len(c.split.train), len(c.split.test)) == (7, 3)
    assert c.split.rule.startswith("sha1-fraction")


def test_fraction_split_is_exact_deterministic_and_order_free():
    ids = [f"q{i}" for i in range(100)]
    a = fraction_split(ids, set(ids[:90]), 0.25)
    b = fraction_split(list(reversed(ids)), set(ids[:90]), 0.25)
    assert len(a.test) == round(0.25 * 90) and set(a.test) == set(b.test)
    assert len(a.unjudged) == 10 and not set(a.unjudged) & (set(a.train) | set(a.test))
    with pytest.raises(DdroError, match="between 0 and 1"):
        fraction_split(ids, set(ids), 1.5)


def test_msmarco_documents_queries_and_trec_qrels(tmp_path):
    (tmp_path / "msmarco-docs.tsv").write_text("D1\thttp://a.org/x\tTitle one\tBody one\nD2\thttp://b.org/y\tTitle two\tBody two\n")
    (tmp_path / "queries.train.tsv").write_text("1\tfirst query\n")
    (tmp_path / "queries.dev.tsv").write_text("2\tsecond query\n")
    (tmp_path / "qrels.train.tsv").write_text("1 0 D1 1\n")
    (tmp_path / "qrels.dev.tsv").write_text("2 0 D2 1\n")
    c = load_collection(tmp_path)
    assert c.docs[1] == ("D2", "Title two", "Body two", "http://b.org/y")
    assert c.split.train == ("1",) and c.split.test == ("2",)


def test_msmarco_passages_two_columns(tmp_path):
    (tmp_path / "collection.tsv").write_text("0\tpassage zero\n1\tpassage one\n")
    (tmp_path / "queries.tsv").write_text("7\tq\n")
    (tmp_path / "qrels.tsv").write_text("7 0 1 1\n")
    c = load_collection(tmp_path, test_fraction=1.0)
    assert c.docs[0] == ("0", "", "passage zero", "") and c.split.test == ("7",)


def test_irds_reader_through_ir_datasets(monkeypatch):
    doc = types.SimpleNamespace
    dataset = types.SimpleNamespace(
        has_docs=lambda: True, has_queries=lambda: True, has_qrels=lambda: True,
        docs_iter=lambda: iter([doc(doc_id="a", title="T", text="x"), doc(doc_id="b", text="y")]),
        queries_iter=lambda: iter([doc(query_id="1", text="q")]),
        qrels_iter=lambda: iter([doc(query_id="1", doc_id="b", relevance=2)]),
    )
    fake = types.ModuleType("ir_datasets")
    fake.load = lambda name: dataset if name == "fake/set" else (_ for _ in ()).throw(KeyError(name))
    monkeypatch.setitem(sys.modules, "ir_datasets", fake)
    c = load_collection("irds:fake/set", test_fraction=1.0)
    assert [d.doc_id for d in c.docs] == ["a", "b"] and c.docs[0].title == "T" and c.qrels[0].relevance == 2
    with pytest.raises(DdroError, match="knows no dataset"):
        load_collection("irds:nope")


def test_irds_without_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "ir_datasets", None)
    with pytest.raises(DdroError, match="ir_datasets is not installed"):
        load_collection("irds:cranfield")


# --- bad input: one clear error naming the place (every reader's battery: tests/test_malformed_inputs.py)

def test_bad_folders(tmp_path):
    with pytest.raises(DdroError, match="collection folder not found"):
        load_collection(tmp_path / "missing")
    with pytest.raises(DdroError, match="no known collection layout"):
        load_collection(tmp_path)
    (tmp_path / "f").write_text("x")
    with pytest.raises(DdroError, match="is a folder"):
        load_collection(tmp_path / "f")


def gzip_every_file(folder):
    """Replace each file under `folder` by `NAME.gz` holding the same bytes."""
    import gzip

    for path in [p for p in folder.rglob("*") if p.is_file()]:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()


@pytest.mark.parametrize("layout", ["beir", "msmarco"])
def test_gzipped_files_read_as_the_plain_ones(tmp_path, layout):
    plain = tmp_path / "plain"
    if layout == "beir":
        write_beir(plain)
    else:
        plain.mkdir()
        (plain / "collection.tsv").write_text("0\tpassage zero\n1\tpassage one\n")
        (plain / "queries.train.tsv").write_text("7\tq\n")
        (plain / "queries.dev.tsv").write_text("8\tr\n")
        (plain / "qrels.train.tsv").write_text("7 0 1 1\n")
        (plain / "qrels.dev.tsv").write_text("8 0 0 1\n")
    import shutil

    zipped = tmp_path / "zipped"
    shutil.copytree(plain, zipped)
    gzip_every_file(zipped)
    assert not [p for p in zipped.rglob("*") if p.is_file() and p.suffix != ".gz"]
    a, b = load_collection(plain), load_collection(zipped)
    assert (a.docs, a.queries, a.qrels, a.split.train, a.split.test) == (b.docs, b.queries, b.qrels, b.split.train,
                                                                         b.split.test)
    assert len(b.docs) >= 2 and b.split.test


def test_gzipped_run_files_read_as_the_plain_ones(tmp_path):
    import gzip

    from ddro.runs import read_trec_run
    from ddro.training.negatives import run_file_rankings

    trec = "1 Q0 D2 1 3.5 x\n1 Q0 D1 2 2.0 x\n2 Q0 D1 1 1.0 x\n"
    marco = "1\tD2\t1\n1\tD1\t2\n"
    for name, text in (("run.trec", trec), ("run.tsv", marco)):
        (tmp_path / name).write_text(text)
        (tmp_path / (name + ".gz")).write_bytes(gzip.compress(text.encode()))
        assert run_file_rankings(tmp_path / name) == run_file_rankings(tmp_path / (name + ".gz"))
    assert read_trec_run(tmp_path / "run.trec.gz") == read_trec_run(tmp_path / "run.trec")
    assert run_file_rankings(tmp_path / "run.tsv.gz") == {"1": ["D2", "D1"]}


def test_empty_documents_are_kept_and_noted_where_a_collection_has_them_but_not_all(tmp_path):
    # Cranfield has two records without title or text (471, 995); a line-per-record file's empty
    # document is refused instead (tests/test_malformed_inputs.py).
    (tmp_path / "cran.all.1400").write_text(".I 1\n.T\nwing\n.W\nlift\n.I 2\n.T\n.W\n")
    (tmp_path / "cran.qry").write_text(".I 001\n.W\nquery\n")
    (tmp_path / "cranqrel").write_text("1 1 2\n")
    c = load_collection(tmp_path)
    assert [d.doc_id for d in c.docs] == ["1", "2"] and any("1 empty documents" in n and ": 2" in n for n in c.notes)
    (tmp_path / "cran.all.1400").write_text(".I 1\n.W\n\n.I 2\n.T\n.W\n")
    with pytest.raises(DdroError, match="all 2 documents are empty"):
        load_collection(tmp_path)
