"""A WordPiece tokenizer trained on the collection, for models that have no pretrained one."""

from __future__ import annotations

SPECIALS = ["[PAD]", "[EOS]", "[UNK]"]


def train_wordpiece(texts, vocab_size: int):
    """Lower-cased WordPiece over the texts; `[PAD]`=0, `[EOS]`=1, `[UNK]`=2 (T5's pad/eos ids)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False)
    core.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", eos_token="[EOS]", unk_token="[UNK]")
