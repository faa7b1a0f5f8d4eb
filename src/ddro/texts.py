"""Texts cut to what a truncating tokenizer reads.

A tokenizer asked for `max_length` tokens still tokenizes the whole text first: one 50 MB document
became millions of token objects (about 5 GB) to keep 64 of them. Every word (a run of
non-space characters holding one that normalization keeps: not a control or zero-width
character) gives at least one token, and tokens do not cross words, so the first `max_length`
such words hold the first `max_length` tokens; the text is cut after twice that many (a margin
for the rare character that a tokenizer drops anyway, such as a lone accent), and the tokens kept
are the same.
"""

from __future__ import annotations

import re

# A word that keeps something after normalization: a run of non-space characters holding one that
# is neither a control nor a format character (zero-width spaces and joiners, BOM, bidi marks),
# which tokenizers drop.
_INVISIBLE = "\x00-\x20\x7f-\xa0\u00ad\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff"
_WORD = re.compile(rf"[^\s]*?[^\s{_INVISIBLE}]\S*")


def for_tokenizer(text: str, max_tokens: int) -> str:
    """`text` up to the end of its `2 * max_tokens + 8`-th word (all of it when it is shorter)."""
    words = 2 * max_tokens + 8
    if len(text) <= words:  # fewer characters than words kept: nothing to cut
        return text
    end = 0
    for count, match in enumerate(_WORD.finditer(text), 1):
        end = match.end()
        if count == words:
            return text[:end]
    return text


def all_for_tokenizer(texts, max_tokens: int) -> list[str]:
    """`for_tokenizer` of each text."""
    return [for_tokenizer(text, max_tokens) for text in texts]
