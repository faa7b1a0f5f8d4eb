"""Properties checked on generated inputs (hypothesis), each against an independent computation.

Every property runs twice: with the `fast` profile's examples in the fast suite and with the
`slow` profile's many more under `-m slow` (profiles: tests/conftest.py).
"""

import hashlib
import json
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

from ddro.collections import Document, Qrel, Query, load_collection  # noqa: E402
from ddro.collections.base import fraction_split, validation_part  # noqa: E402
from ddro.collections.textio import read_trec_qrels  # noqa: E402
from ddro.decoding.trie import DocidTrie  # noqa: E402
from ddro.docids.table import COLLISION_POLICIES, PAD, DocidTable, collision_groups  # noqa: E402
from ddro.errors import DdroError  # noqa: E402
from ddro.runs import read_trec_run, write_trec_run  # noqa: E402

from test_trie import naive_complete, naive_next  # noqa: E402

BUDGETS = [pytest.param("fast", id="fast"), pytest.param("slow", id="slow", marks=pytest.mark.slow)]


def prop(*strategies):
    """`check(*examples)` as a test run under each budget of `BUDGETS`."""
    def decorate(check):
        @pytest.mark.parametrize("budget", BUDGETS)
        def test(budget):
            settings(settings.get_profile(budget))(given(*strategies)(check))()

        test.__name__, test.__doc__ = check.__name__, check.__doc__
        return test
    return decorate


# --- what generated records are made of ---------------------------------------------------------

# Printable unicode: no surrogates (not UTF-8), no other control or unassigned characters.
PRINTABLE = st.characters(blacklist_categories=("Cs", "Cc", "Co", "Cn"))
# Ids as a run file or qrels can hold them: no white space of any kind.
IDS = st.text(PRINTABLE.filter(lambda c: not c.isspace()), min_size=1, max_size=8)
# Text of a JSON field: anything printable, tabs, newlines and carriage returns too.
JSON_TEXT = st.text(st.one_of(PRINTABLE, st.sampled_from("\t\n\r \\\"")), max_size=30)
# Text of a TSV field, which has no escaping: no tab, newline or carriage return.
TSV_TEXT = st.text(PRINTABLE, max_size=30)


def has_words(*texts):
    return any(t.strip() for t in texts)


@st.composite
def collections(draw, text):
    """`(docs, queries, qrels)`: unique ids, documents and queries with some text, and judgments
    of distinct (query, document) pairs."""
    doc_ids = draw(st.lists(IDS, min_size=1, max_size=6, unique=True))
    docs = [Document(d, draw(text), draw(text.filter(has_words)), draw(text)) for d in doc_ids]
    query_ids = draw(st.lists(IDS, min_size=1, max_size=4, unique=True))
    queries = [Query(q, draw(text.filter(has_words))) for q in query_ids]
    pairs = draw(st.lists(st.tuples(st.sampled_from(query_ids), st.sampled_from(doc_ids)), min_size=1, max_size=8,
                          unique=True))
    qrels = [Qrel(q, d, draw(st.integers(-2, 3))) for q, d in pairs]
    return docs, queries, qrels


def write_beir(folder: Path, docs, queries, qrels):
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": d.doc_id, "title": d.title, "text": d.text, "metadata": {"url": d.url}},
                   ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(
        json.dumps({"_id": q.query_id, "text": q.text}, ensure_ascii=False) + "\n" for q in queries), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q.query_id}\t{q.doc_id}\t{q.relevance}\n" for q in qrels), encoding="utf-8")


def write_msmarco(folder: Path, docs, queries, qrels):
    folder.mkdir()
    (folder / "msmarco-docs.tsv").write_text("".join(f"{d.doc_id}\t{d.url}\t{d.title}\t{d.text}\n" for d in docs),
                                            encoding="utf-8")
    (folder / "queries.tsv").write_text("".join(f"{q.query_id}\t{q.text}\n" for q in queries), encoding="utf-8")
    (folder / "qrels.tsv").write_text("".join(f"{q.query_id} 0 {q.doc_id} {q.relevance}\n" for q in qrels),
                                      encoding="utf-8")


def read_back(write, records):
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp) / "c", *records)
        collection = load_collection(Path(tmp) / "c", test_fraction=1.0)
        return collection.docs, collection.queries, collection.qrels


# --- readers against the files written for them -------------------------------------------------

@prop(collections(JSON_TEXT))
def test_a_beir_collection_reads_back_as_written(records):
    assert read_back(write_beir, records) == records


@prop(collections(TSV_TEXT))
def test_an_msmarco_collection_reads_back_as_written(records):
    assert read_back(write_msmarco, records) == records


@prop(collections(TSV_TEXT), st.sampled_from(["\t", "\n"]), st.data())
def test_an_msmarco_text_with_a_tab_or_newline_is_refused_not_misread(records, breaker, data):
    docs, queries, qrels = records
    i = data.draw(st.integers(0, len(docs) - 1))
    docs = docs[:i] + [docs[i]._replace(text=docs[i].text + breaker + "more")] + docs[i + 1:]
    with pytest.raises(DdroError, match=r"msmarco-docs\.tsv:\d+: expected (2, 3 or )?4 tab-separated columns"):
        read_back(write_msmarco, (docs, queries, qrels))


@st.composite
def runs(draw, scores):
    """A run: distinct queries, each ranking distinct documents, scored by `scores(n)`."""
    run = {}
    for query_id in draw(st.lists(IDS, min_size=1, max_size=4, unique=True)):
        doc_ids = draw(st.lists(IDS, min_size=1, max_size=6, unique=True))
        run[query_id] = list(zip(doc_ids, draw(scores(len(doc_ids)))))
    return run


def micro_scores(n):
    """Strictly decreasing scores in whole micro-units: written exactly at 6 decimals."""
    return st.lists(st.integers(-10**12, 10**12), min_size=n, max_size=n, unique=True).map(
        lambda units: [u / 10**6 for u in sorted(units, reverse=True)])


def any_scores(n):
    return st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=n, max_size=n)


def written_and_read(run):
    with tempfile.TemporaryDirectory() as tmp:
        return read_trec_run(write_trec_run(run, Path(tmp) / "run.trec", "tag"))


@prop(runs(micro_scores))
def test_a_run_reads_back_as_written(run):
    assert written_and_read(run) == run


@prop(runs(any_scores))
def test_a_run_keeps_its_order_whatever_its_scores(run):
    """Ties and rising scores are written strictly decreasing, so a reader that sorts by score
    (as trec_eval does) sees the order given; each score moves by no more than that needs."""
    read = written_and_read(run)
    assert {q: [d for d, _ in ranked] for q, ranked in read.items()} == {q: [d for d, _ in r] for q, r in run.items()}
    for query_id, ranked in read.items():
        scores = [s for _, s in ranked]
        assert all(a > b for a, b in zip(scores, scores[1:]))
        assert abs(scores[0] - run[query_id][0][1]) <= 5e-7 + 1e-9
        assert all(read_s <= given + 5e-7 + 1e-9 for read_s, (_, given) in zip(scores, run[query_id]))


@prop(st.lists(st.tuples(IDS, IDS, IDS, st.integers(-10**6, 10**6)), min_size=1, max_size=10))
def test_trec_qrels_read_back_as_written(rows):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "qrels"
        path.write_text("".join(f"{q} {iteration} {d} {rel}\n" for q, iteration, d, rel in rows), encoding="utf-8")
        assert [(q, d, rel) for _, q, d, rel in read_trec_qrels(path)] == [(q, d, rel) for q, _, d, rel in rows]


# --- docid tables ------------------------------------------------------------------------------

@st.composite
def tables(draw):
    n, width = draw(st.integers(1, 12)), draw(st.integers(1, 5))
    vocab = draw(st.lists(st.text(PRINTABLE, min_size=1, max_size=6), min_size=1, max_size=20, unique=True))
    codes = np.full((n, width), PAD, dtype=np.int32)
    for row in range(n):
        length = draw(st.integers(1, width))
        codes[row, :length] = draw(st.lists(st.integers(0, len(vocab) - 1), min_size=length, max_size=length))
    new_tokens = draw(st.booleans())
    # A docid string is free text (title schemes): tabs, newlines and quotes are quoted in docids.tsv.
    strings = None if new_tokens else draw(st.lists(JSON_TEXT, min_size=n, max_size=n))
    return DocidTable(scheme=draw(st.text(PRINTABLE, min_size=1, max_size=8)),
                      doc_ids=draw(st.lists(IDS, min_size=n, max_size=n, unique=True)), codes=codes, vocab=vocab,
                      new_tokens=new_tokens,
                      options=draw(st.dictionaries(st.text(PRINTABLE, max_size=6),
                                                   st.one_of(st.integers(), st.text(PRINTABLE, max_size=6)),
                                                   max_size=3)),
                      strings=strings, collision_groups=collision_groups(codes),
                      collision_policy=draw(st.sampled_from(COLLISION_POLICIES)))


@prop(tables())
def test_a_docid_table_loads_back_as_saved(table):
    with tempfile.TemporaryDirectory() as tmp:
        table.save(Path(tmp) / "t")
        loaded = DocidTable.load(Path(tmp) / "t")
    assert np.array_equal(loaded.codes, table.codes) and loaded.codes.dtype == np.int32
    fields = ("scheme", "doc_ids", "vocab", "new_tokens", "options", "strings", "collision_groups", "collision_policy")
    assert {f: getattr(loaded, f) for f in fields} == {f: getattr(table, f) for f in fields}


# --- the prefix trie ---------------------------------------------------------------------------

@st.composite
def docid_sets(draw):
    """Token sequences padded with PAD, and the vocabulary size."""
    vocab, width = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    rows = draw(st.lists(st.lists(st.integers(0, vocab - 1), min_size=1, max_size=width), min_size=1, max_size=30))
    return np.array([row + [PAD] * (width - len(row)) for row in rows]), vocab


@prop(docid_sets(), st.data())
def test_the_trie_allows_what_a_scan_of_the_docids_allows(docids, data):
    import torch

    sequences, vocab = docids
    width = sequences.shape[1]
    # Every prefix of every docid, and random ones (mostly no docid's prefix), of each length.
    real = {tuple(int(t) for t in row[row != PAD][:k]) for row in sequences for k in range(width + 1)}
    drawn = data.draw(st.lists(st.lists(st.integers(0, vocab - 1), max_size=width), max_size=10))
    trie = DocidTrie(sequences, vocab)
    for depth in range(width + 1):
        prefixes = sorted({p for p in real | set(map(tuple, drawn)) if len(p) == depth})
        if not prefixes:
            continue
        batch = torch.tensor(prefixes, dtype=torch.long).reshape(len(prefixes), depth)
        mask, states = trie.next_tokens_mask(batch), trie.walk(batch)
        complete = trie.is_complete(states, depth)
        for b, prefix in enumerate(prefixes):
            assert set(torch.nonzero(mask[b]).flatten().tolist()) == naive_next(sequences, prefix), prefix
            assert bool(complete[b]) == naive_complete(sequences, prefix), prefix


# --- the split rule ----------------------------------------------------------------------------

def rule_rank(rule: str, query_id: str) -> str:
    return hashlib.sha1(f"{rule}:{query_id}".encode()).hexdigest()


QUERY_IDS = st.lists(st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=6), max_size=40,
                     unique=True)


@prop(QUERY_IDS, st.data(), st.floats(0, 1))
def test_the_split_is_a_partition_fixed_by_the_ids_alone(ids, data, fraction):
    judged = set(data.draw(st.lists(st.sampled_from(ids), unique=True))) if ids else set()
    split = fraction_split(ids, judged, fraction)
    shuffled = fraction_split(data.draw(st.permutations(ids)), judged, fraction)
    train, test, unjudged = set(split.train), set(split.test), set(split.unjudged)
    assert not (train & test or train & unjudged or test & unjudged) and train | test | unjudged == set(ids)
    assert (set(shuffled.train), set(shuffled.test)) == (train, test)
    # Written out: the judged queries of smallest SHA-1 of "ddro-split:<id>", round(fraction * judged) of them.
    assert test == set(sorted(judged, key=lambda q: rule_rank("ddro-split", q))[:round(fraction * len(judged))])
    assert unjudged == set(ids) - judged


@prop(QUERY_IDS, st.data(), st.floats(0, 1), st.floats(0, 1))
def test_the_validation_part_is_fixed_by_the_ids_and_grows_with_the_fraction(ids, data, low, high):
    low, high = sorted((low, high))
    part = validation_part(ids, high)
    assert part == validation_part(data.draw(st.permutations(ids)), high)  # not the order given
    assert validation_part(ids, low) <= part <= set(ids)
    below = {q for q in ids if int(rule_rank("ddro-validation", q)[:8], 16) / 16**8 < high}
    expected = set() if high <= 0 or len(ids) < 2 else below or {min(ids, key=lambda q: rule_rank("ddro-validation", q))}
    assert part == expected
    split = fraction_split(ids, set(ids), 0.5)
    assert not validation_part(split.train, high) & set(split.test)  # never a test query
