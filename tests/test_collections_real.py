"""Spot checks of the raw classic collections, ir_datasets style: counts and fixed records."""

import pytest

from ddro.collections import load_collection

from conftest import DATA, needs_data


@needs_data("cranfield")
def test_cranfield_counts_and_records():
    c = load_collection(DATA / "cranfield")
    assert (len(c.docs), len(c.queries), len(c.judged_query_ids()), len(c.qrels)) == (1400, 225, 225, 1837)
    assert sum(q.relevance > 0 for q in c.qrels) == 1612
    assert c.docs[0].doc_id == "1"
    assert c.docs[0].title == "experimental investigation of the aerodynamics of a wing in a slipstream ."
    assert c.docs[0].text.startswith("experimental investigation of the aerodynamics of a wing in a slipstream . an experimental study")
    assert c.docs[9].doc_id == "10" and c.docs[9].title == "the theory of the impact tube at low pressure ."
    assert c.docs[-1].doc_id == "1400" and c.docs[-1].text.endswith("ratios of width to stiffener spacing of graphical forms .")
    # cran.qry numbers 001..365 with gaps; ids are the file positions, as cranqrel uses them.
    assert c.queries[0] == ("1", "what similarity laws must be obeyed when constructing aeroelastic models of heated high speed aircraft .")
    assert c.queries[9].query_id == "10" and c.queries[9].text.startswith("are real-gas transport properties for air")
    assert c.queries[-1] == ("225", "what design factors can be used to control lift-drag ratios at mach numbers above 5 .")
    assert c.qrels[0] == ("1", "184", 3)  # code 2 -> relevance 3
    assert c.qrels[9] == ("1", "57", 3)
    assert c.qrels[-1] == ("225", "1188", 0)  # code -1 (source document) -> not relevant
    assert sum(q.relevance == 4 for q in c.qrels) == 128
    assert any("renumbered" in n for n in c.notes) and any("code -1" in n for n in c.notes)


@needs_data("npl")
def test_npl_counts_and_records():
    c = load_collection(DATA / "npl")
    assert (len(c.docs), len(c.queries), len(c.judged_query_ids()), len(c.qrels)) == (11429, 93, 93, 2083)
    assert c.docs[0].doc_id == "1" and c.docs[0].title == ""
    assert c.docs[0].text.startswith("compact memories have flexible capacities a digital data storage")
    assert c.docs[9] == ("10", "", "highspeed microwave switching of semiconductors part", "")
    assert c.docs[-1].doc_id == "11429" and c.docs[-1].text.endswith("reading handlettered sansserif alphanumeric characters")
    assert c.queries[0] == ("1", "MEASUREMENT OF DIELECTRIC CONSTANT OF LIQUIDS BY THE USE OF MICROWAVE TECHNIQUES")
    assert c.queries[9] == ("10", "METHODS OF CALCULATING INSTANTANEOUS POWER DISSIPATION IN REACTIVE CIRCUITS")
    assert c.queries[-1].query_id == "93"
    assert c.qrels[0] == ("1", "1239", 1) and c.qrels[9] == ("1", "6824", 1) and c.qrels[-1] == ("93", "11318", 1)


@needs_data("lisa")
def test_lisa_counts_records_and_policies():
    c = load_collection(DATA / "lisa")
    # 6,003 records, of which 1998-2001 twice with identical text: 5,999 documents.
    assert (len(c.docs), len(c.queries), len(c.judged_query_ids()), len(c.qrels)) == (5999, 35, 35, 379)
    ids = [d.doc_id for d in c.docs]
    assert len(set(ids)) == len(ids)
    assert not {"1993", "1994", "1995", "1996", "1997"} & set(ids)
    assert c.docs[0].doc_id == "1" and c.docs[0].title.startswith("THE INDIAN COUNCIL OF LIBRARY AND INFORMATION SERVICES")
    assert c.docs[0].text.startswith("CRITICALLY EXAMINES THE INDIAN LIBRARY SCENE.")
    assert c.docs[9].doc_id == "10" and c.docs[9].title.startswith("INFORMATION: BOOKS ARE JUST THE BEGINNING.")
    assert c.docs[-1].doc_id == "6004" and c.docs[-1].title.startswith("THE ORGANIZATION AND USE OF INFORMATION")
    assert c.queries[0].query_id == "1" and c.queries[0].text.startswith("I AM INTERESTED IN THE IDENTIFICATION")
    assert c.queries[0].text.endswith("ASSOCIATIVE MEMORY.")  # the closing '#' is not text
    assert c.queries[9].query_id == "10" and c.queries[9].text.startswith("I AM INTERESTED IN INFORMATION ON THE PROVISION")
    assert c.queries[-1].query_id == "35"
    # LISARJ.NUM judges queries 22 and 23, which LISA.REL lacks.
    judged = {q.query_id for q in c.qrels}
    assert {"21", "22", "23"} <= judged
    assert [q.doc_id for q in c.qrels if q.query_id == "22"] == ["5699"]
    assert c.qrels[0] == ("1", "3392", 1) and c.qrels[9] == ("4", "604", 1) and c.qrels[-1] == ("35", "3799", 1)
    notes = " ".join(c.notes)
    assert "1998, 1999, 2000, 2001" in notes and "1993-1997" in notes and "without a 'Document N' header" in notes


@needs_data("lisa")
def test_lisa_rel_fallback_policy(tmp_path):
    """Without LISARJ.NUM, LISA.REL is read: its repeat merged, its broken entry skipped, both reported."""
    for f in (DATA / "lisa").iterdir():
        if f.name != "LISARJ.NUM":
            (tmp_path / f.name).symlink_to(f)
    c = load_collection(tmp_path)
    judged = {q.query_id for q in c.qrels if q.relevance > 0}
    assert len(judged) == 32 and not {"21", "22", "23"} & judged
    assert any("query 21" in n and "skipped" in n for n in c.notes)
    assert any("query 35" in n and "merged" in n for n in c.notes)


@pytest.mark.parametrize("name,expected", [("cranfield", (150, 75)), ("npl", (62, 31)), ("lisa", (23, 12))])
def test_default_split_is_recorded_and_stable(name, expected):
    if not (DATA / name).is_dir():
        pytest.skip("data not present")
    a, b = load_collection(DATA / name), load_collection(DATA / name)
    assert (len(a.split.train), len(a.split.test)) == expected
    assert a.split == b.split
    assert not set(a.split.train) & set(a.split.test)
    everything = load_collection(DATA / name, test_fraction=1.0)
    assert everything.split.train == () and len(everything.split.test) == sum(expected)
