import json
import os
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

try:
    from hypothesis import settings
except ImportError:  # the dev extra is not installed: tests/test_properties.py skips itself
    pass
else:
    # Examples per property: a bounded number in the fast suite, many more under `-m slow`
    # (tests/test_properties.py runs each property with both). No example database: nothing is
    # written into the checkout.
    settings.register_profile("fast", max_examples=25, deadline=None, database=None)
    settings.register_profile("slow", max_examples=300, deadline=None, database=None)
    settings.load_profile("fast")


def on_model_device(batch: dict, model) -> dict:
    """`batch` on the model's device (the Trainer puts a model on the GPU when there is one)."""
    device = next(model.parameters()).device
    return {name: t.to(device) for name, t in batch.items()}


def needs_data(name: str):
    return pytest.mark.skipif(not (DATA / name).is_dir(), reason=f"../shared/data/{name} not present")


def assert_refused(status: int, capsys, where: str, problem: str, outputs=()) -> str:
    """A user error as the user sees it: exit status 2, nothing on stdout, one line on stderr
    (`ddro: error: ...`, no traceback) naming the file and line (`where`) and the `problem`, and
    none of `outputs` there afterwards (nor a temporary or lock file beside one): nothing that
    could pass for a result. Returns the line."""
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    err = captured.err.strip().splitlines()
    assert (status, len(err), captured.out) == (2, 1, ""), (status, captured.err, captured.out)
    assert err[0].startswith(f"ddro: error: {where}") and problem in err[0], (where, problem, err[0])
    for out in map(Path, outputs):
        assert not out.exists() and not list(out.parent.glob(f".{out.name}*")), sorted(out.parent.iterdir())
    return err[0]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Embeddings are cached per test session, never in the user's home."""
    monkeypatch.setenv("DDRO_CACHE", str(tmp_path_factory.getbasetemp() / "ddro-cache"))


TOPICS = [
    ("wing lift", "the lift of a swept wing in a subsonic stream"),
    ("heat flow", "transient heat conduction in a composite slab"),
    ("shock waves", "shock wave reflection at a supersonic corner"),
    ("boundary layer", "laminar boundary layer transition on a flat plate"),
    ("plate buckling", "buckling of thin plates under shear loads"),
]


def write_beir(folder: Path, n_docs: int = 40, splits=("train", "test"), urls: bool = True) -> Path:
    """A small BEIR-layout collection with topical documents and queries."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w") as fh:
        for i in range(n_docs):
            topic, phrase = TOPICS[i % len(TOPICS)]
            rec = {"_id": f"d{i}", "title": f"{topic} study {i // len(TOPICS)}",
                   "text": f"{phrase}. experiment number {i} reports {topic} measurements and theory."}
            if urls:
                rec["metadata"] = {"url": f"https://www.example.org/{topic.replace(' ', '-')}/report-{i}.html"}
            fh.write(json.dumps(rec) + "\n")
    with open(folder / "queries.jsonl", "w") as fh:
        for q in range(10):
            fh.write(json.dumps({"_id": f"q{q}", "text": f"what about {TOPICS[q % len(TOPICS)][0]}"}) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    for s, split in enumerate(splits):
        with open(folder / "qrels" / f"{split}.tsv", "w") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for q in range(10):
                if len(splits) == 1 or q % len(splits) == s:
                    fh.write(f"q{q}\td{q % n_docs}\t1\n")
                    fh.write(f"q{q}\td{(q + len(TOPICS)) % n_docs}\t2\n")
    return folder


@pytest.fixture
def beir_dir(tmp_path):
    return write_beir(tmp_path / "tiny")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 30-document collection (30% of its queries test) and a tiny untrained docid model for it."""
    from ddro.collections import load_collection
    from ddro.docids import DocidConfig, build_docids
    from ddro.models import build_docid_model, get_preset

    collection = load_collection(write_beir(tmp_path_factory.mktemp("c") / "tiny", n_docs=30), test_fraction=0.3)
    preset = get_preset("tiny")
    table = build_docids(collection, DocidConfig(**preset.docid_plan.docids))
    model = build_docid_model(preset, table, [d.text for d in collection.docs], seed=0)
    return collection, model


def bare_corpus(collection):
    """`collection` with every query a test query: nothing trains on queries."""
    import copy

    bare = copy.copy(collection)
    bare.split = type(collection.split)("all-test", (), tuple(q.query_id for q in collection.queries))
    return bare


def write_query_generator(folder: Path) -> Path:
    """A tiny random T5 query-generation model (a stand-in for docT5query) saved to `folder`, its
    tokenizer trained on the words `write_beir` builds its documents from."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from ddro.models.tokenizer import train_subword_tokenizer

    tokenizer = train_subword_tokenizer([" ".join(topic) for topic in TOPICS], 200)
    config = T5Config(vocab_size=len(tokenizer), d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_tiny_t5(folder: Path, texts: list[str] | None = None) -> Path:
    """A tiny random T5 checkpoint with its own subword tokenizer, saved as a Hugging Face folder:
    a stand-in for `t5-base` (`--model DIR`, architecture `pretrained`). Its tokenizer is trained on
    `texts`, by default the words `write_beir` builds documents and queries from."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from ddro.models.tokenizer import train_subword_tokenizer

    words = texts or [f"{topic} {phrase} study experiment number reports measurements and theory what about"
                      for topic, phrase in TOPICS]
    tokenizer = train_subword_tokenizer(words + [" ".join("0123456789")], 300)  # digits: docids count duplicates in them
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_ff=64, num_layers=1, num_decoder_layers=1,
                      num_heads=2, d_kv=16, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_sentence_transformer(folder: Path, texts: list[str] | None = None, dim: int = 12) -> Path:
    """A tiny random sentence-transformers model saved to `folder` in GTR's layout: a T5 encoder,
    mean pooling, a Dense layer (to `dim`) without bias or activation, then normalization
    (`modules.json` names the four). Its tokenizer is trained on `texts`, by default the words
    `write_beir` builds its documents from."""
    import tempfile

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
    from transformers import T5Config, T5EncoderModel

    from ddro.models.tokenizer import train_subword_tokenizer

    tokenizer = train_subword_tokenizer(texts or [" ".join(topic) for topic in TOPICS], 200)
    config = T5Config(vocab_size=len(tokenizer), d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as encoder_dir:
        T5EncoderModel(config).save_pretrained(encoder_dir)
        tokenizer.save_pretrained(encoder_dir)
        modules = [Transformer(encoder_dir, max_seq_length=64), Pooling(16, "mean"),
                   Dense(16, dim, bias=False, activation_function=torch.nn.Identity()), Normalize()]
        SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    return folder
