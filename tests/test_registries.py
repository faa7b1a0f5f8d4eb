"""The docid scheme and model architecture registries: the lists derive from them, and a new entry is one registration."""

from dataclasses import replace

import numpy as np
import pytest

from ddro.collections import load_collection
from ddro.docids import DocidConfig, DocidScheme, SchemeKind, build_docids, get_scheme, register_scheme
from ddro.docids import schemes as scheme_registry
from ddro.errors import DdroError
from ddro.models import DocidModel, build_docid_model, get_preset
from ddro.models import architectures as architecture_registry
from ddro.models.architectures import Architecture, get_architecture, register_architecture


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    from conftest import write_beir

    return load_collection(write_beir(tmp_path_factory.mktemp("c") / "tiny", n_docs=20))


def test_scheme_lists_derive_from_the_registry():
    assert scheme_registry.SCHEMES == ("pq", "rq", "hkmeans", "title", "url", "terms", "naive", "atomic", "ngram")
    assert scheme_registry.COMPUTED == ("pq", "rq", "hkmeans")
    assert scheme_registry.TEXTUAL == ("title", "url", "terms", "naive")
    assert get_scheme("atomic").kind == SchemeKind.ATOMIC and get_scheme("ngram").kind == SchemeKind.SPANS
    with pytest.raises(DdroError, match="unknown docid scheme"):
        get_scheme("nope")
    with pytest.raises(ValueError, match="registered already"):
        register_scheme(DocidScheme("pq", SchemeKind.COMPUTED, (), lambda embeddings, config: None))


def test_a_new_scheme_is_one_registration(collection, monkeypatch):
    monkeypatch.setattr(scheme_registry, "DOCID_SCHEMES", dict(scheme_registry.DOCID_SCHEMES))
    register_scheme(DocidScheme("first-word", SchemeKind.TEXTUAL, ("tokenizer", "max_tokens"),
                                lambda docs, config: [d.title.split()[0] for d in docs]))
    table = build_docids(collection, DocidConfig(scheme="first-word"))
    assert table.scheme == "first-word" and not table.new_tokens
    assert table.strings[0] == "wing" and table.strings[5] == "wing 2"  # the suffix policy numbers duplicates
    assert table.options == {"scheme": "first-word", "seed": 0, "collisions": "suffix", "tokenizer": "minilm",
                             "max_tokens": 64, "eos_token": "[SEP]"}
    assert "first-word" not in scheme_registry.SCHEMES  # the built-in list is not what a plugin changes

    register_scheme(DocidScheme("halves", SchemeKind.COMPUTED, ("encoder",), lambda embeddings, config: (
        (embeddings[:, :1] > 0).astype(np.int32), ["<low>", "<high>"])))
    halves = build_docids(collection, DocidConfig(scheme="halves", encoder="lsa:4"))
    assert halves.new_tokens and halves.unique_docids() == len(collection.docs)  # <dup_k> made them unique
    assert halves.vocab[:2] == ["<low>", "<high>"] and halves.vocab[2] == "<dup_0>"


def test_architecture_answers_come_from_the_registry(tiny):
    _, model = tiny
    assert get_architecture("minilm-warm").encoder_decoder and not get_architecture("t5-scratch").encoder_decoder
    cpu = get_preset("cpu")
    assert model.encoder_lr_scale(cpu) == 1.0  # a T5 trains its encoder at the full rate
    assert replace(model, architecture="minilm-warm").encoder_lr_scale(cpu) == 0.03
    assert get_architecture("pretrained").docid_tokenizer(get_preset("cpu", model="ckpt").network) == "ckpt"
    assert get_architecture("t5-scratch").docid_tokenizer(cpu.network) is None
    with pytest.raises(DdroError, match="architecture 'nope': unknown architecture"):
        build_docid_model(get_preset("tiny", architecture="nope"), model.table, None)
    with pytest.raises(ValueError, match="registered already"):
        register_architecture(Architecture("t5-scratch", get_architecture("t5-scratch").build))


def test_a_new_architecture_is_one_registration(tiny, tmp_path, monkeypatch):
    """A registered architecture builds, saves and loads as the built-in ones do."""
    collection, model = tiny
    monkeypatch.setattr(architecture_registry, "ARCHITECTURES", dict(architecture_registry.ARCHITECTURES))
    t5 = get_architecture("t5-scratch")
    register_architecture(Architecture("half-t5", lambda preset, table, texts: t5.build(
        preset.with_fields(d_model=preset.network.d_model // 2), table, texts)))
    texts = [d.text for d in collection.docs]
    half = build_docid_model(get_preset("tiny", architecture="half-t5"), model.table, texts, seed=0)
    assert half.architecture == "half-t5" and half.model.config.d_model == model.model.config.d_model // 2
    half.save(tmp_path / "m")
    again = DocidModel.load(tmp_path / "m")
    assert again.architecture == "half-t5" and again.decoder_vocab_size == half.decoder_vocab_size
