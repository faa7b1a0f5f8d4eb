"""A subword tokenizer trained on the collection, for models that have no pretrained one."""

from __future__ import annotations

SPECIALS = ["[PAD]", "[EOS]", "[UNK]"]


def train_subword_tokenizer(texts, vocab_size: int):
    """Lower-cased BPE over the texts, words marked by a leading `▁` as in T5's SentencePiece;
    `[PAD]`=0, `[EOS]`=1, `[UNK]`=2 (T5's pad/eos ids).

    Not the `tokenizers` WordPiece trainer: it numbers its `##` pieces in hash-map order, so ties
    between merges fall differently from run to run and the same texts give another vocabulary
    (huggingface/tokenizers#1794). With the word mark a character of the word, every piece comes
    from the sorted alphabet and the merges are the same each time.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.BertPreTokenizer(),
                                                  pre_tokenizers.Metaspace(prepend_scheme="always")])
    core.decoder = decoders.Metaspace(prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False)
    core.train_from_iterator(in_pieces(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", eos_token="[EOS]", unk_token="[UNK]")


PIECE_CHARS = 1 << 20


def in_pieces(texts, size: int = PIECE_CHARS):
    """Each text, a long one cut at spaces into pieces of about `size` characters: the trainer
    pre-tokenizes a whole text at once (a 50 MB document took about 4 GB), and cutting between
    words leaves the words it counts unchanged."""
    for text in texts:
        start = 0
        while len(text) - start > size:
            cut = max(text.rfind(space, start, start + size) for space in " \n\t")
            cut = start + size if cut <= start else cut
            yield text[start:cut]
            start = cut
        yield text[start:]
