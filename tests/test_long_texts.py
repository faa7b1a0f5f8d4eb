"""Long documents cost memory for what is read of them, not for their whole length: texts are cut
before a truncating tokenizer (`ddro.texts`) and fed to the tokenizer trainer in pieces
(`models.tokenizer.in_pieces`), and both cuts leave the result unchanged."""

import numpy as np
import pytest

from ddro.models.tokenizer import in_pieces, train_subword_tokenizer
from ddro.texts import for_tokenizer


def texts():
    rng = np.random.default_rng(0)
    words = ["lift", "wing", "Über", "naïve", "x" * 150, "a-b,c", "\u200b", "\x07", "...", "数据", "🙂", "don't"]
    spaces = [" ", "  ", "\n", "\t", " \u00a0 "]
    out = []
    for n in (0, 3, 40, 2000):
        out.append("".join(str(rng.choice(words)) + str(rng.choice(spaces)) for _ in range(n)))
    out.append(" " * 5000 + "late words " * 100)  # the words come after a long run of spaces
    out.append("\u200b " * 300 + "then words " * 100)  # words that normalization empties come first
    return out


@pytest.fixture(scope="module")
def tokenizers(tiny):
    from transformers import AutoTokenizer

    from ddro.docids.encoders import minilm_path

    _, model = tiny
    return [model.tokenizer, AutoTokenizer.from_pretrained(minilm_path())]


@pytest.mark.parametrize("limit", [3, 16, 64])
def test_a_cut_text_gives_the_tokens_the_whole_text_gives(tokenizers, limit):
    for tokenizer in tokenizers:
        for text in texts():
            whole = tokenizer(text, truncation=True, max_length=limit)["input_ids"]
            assert tokenizer(for_tokenizer(text, limit), truncation=True, max_length=limit)["input_ids"] == whole
    assert len(for_tokenizer("w " * 10_000, 16)) < 100  # and it is cut


def test_pieces_keep_every_word_and_the_trained_vocabulary():
    text = " ".join(f"word{i % 997}" for i in range(20_000))
    pieces = list(in_pieces([text, "short"], size=1000))
    assert all(len(p) <= 1000 for p in pieces) and len(pieces) > 100
    assert " ".join(pieces).split() == text.split() + ["short"]
    whole = train_subword_tokenizer([text, "short"], 300).get_vocab()
    assert train_subword_tokenizer(pieces, 300).get_vocab() == whole
