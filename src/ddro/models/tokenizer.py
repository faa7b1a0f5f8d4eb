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
    core.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", eos_token="[EOS]", unk_token="[UNK]")
