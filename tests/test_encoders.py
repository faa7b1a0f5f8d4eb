"""Document encoders: sentence-transformers checkpoints run with their own modules, plain Hugging
Face encoders mean-pooled, LSA queries projected by the documents' fit."""

import numpy as np
import pytest

from ddro.cli import main
from ddro.collections import load_collection
from ddro.docids.encoders import HFMeanPoolEncoder, SentenceTransformerEncoder, document_texts, get_encoder

from conftest import TOPICS, write_sentence_transformer


def test_docids_embed_a_sentence_transformers_checkpoint_with_its_modules(beir_dir, tmp_path):
    """GTR's layout (T5 encoder, mean pooling, Dense, Normalize): `ddro docids` must give what
    sentence-transformers gives, not mean-pooled T5 states (nor fail on a full T5Model)."""
    from sentence_transformers import SentenceTransformer

    model_dir = write_sentence_transformer(tmp_path / "st")
    cache = tmp_path / "cache"
    assert main(["docids", "--collection", str(beir_dir), "--scheme", "pq", "--encoder", f"hf:{model_dir}",
                 "--pq-m", "2", "--pq-k", "4", "--cache-dir", str(cache), "--out", str(tmp_path / "docids")]) == 0
    [cached] = list((cache / "embeddings").glob("*.npy"))
    embedded = np.load(cached)
    texts = document_texts(load_collection(beir_dir))
    expected = SentenceTransformer(str(model_dir), device="cpu").encode(texts)
    assert embedded.shape == (len(texts), 12)  # the Dense layer's width, not the encoder's 16
    np.testing.assert_allclose(embedded, expected, rtol=1e-5, atol=1e-6)
    assert isinstance(get_encoder(f"hf:{model_dir}"), SentenceTransformerEncoder)


def test_a_plain_hugging_face_encoder_is_mean_pooled(tmp_path):
    """Without `modules.json`: the mean of the token states over each text alone, L2-normalised."""
    import torch
    from transformers import BertConfig, BertModel

    from ddro.models.tokenizer import train_subword_tokenizer

    tokenizer = train_subword_tokenizer([" ".join(topic) for topic in TOPICS], 200)
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=32, pad_token_id=0)).eval()
    model.save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")
    encoder = get_encoder(f"hf:{tmp_path / 'bert'}")
    assert isinstance(encoder, HFMeanPoolEncoder)
    texts = ["wing lift", "transient heat conduction in a composite slab", "shock"]
    vectors = encoder.encode(texts)
    for text, vector in zip(texts, vectors):
        ids = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            mean = model(**ids).last_hidden_state[0].mean(0).numpy()
        np.testing.assert_allclose(vector, mean / np.linalg.norm(mean), atol=1e-5)


def test_a_hub_encoder_that_is_not_cached_offline_is_one_clear_error(beir_dir, tmp_path, capsys):
    assert main(["docids", "--collection", str(beir_dir), "--scheme", "pq", "--encoder", "hf:nobody/no-such-encoder",
                 "--out", str(tmp_path / "docids")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'nobody/no-such-encoder' cannot be loaded" in err[0]


def test_lsa_projects_queries_with_the_documents_fit():
    docs = [f"{topic}: {phrase}" for topic, phrase in TOPICS] * 3
    encoder = get_encoder("lsa:8")
    documents = encoder.encode(docs)
    queries = encoder.encode_queries([docs[1], "shear buckling", "zzz unknown"], docs)
    np.testing.assert_allclose(queries[0], documents[1], atol=1e-5)
    assert int(np.argmax(documents @ queries[1])) % len(TOPICS) == 4
    assert not queries[2].any()  # no known term: the zero vector, which scores 0 against every document


@pytest.mark.parametrize("spec", ["minilm", "lsa:8"])
def test_built_in_encoders_keep_their_cache_names(spec):
    """The cache key is the encoder's name: changing it would re-embed, and a changed embedding
    under an old name would silently change every docid built from the cache."""
    assert get_encoder(spec).name == {"minilm": "minilm:all-MiniLM-L6-v2", "lsa:8": "lsa:8:seed0"}[spec]
