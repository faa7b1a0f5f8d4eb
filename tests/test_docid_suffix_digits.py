"""Text docids are made unique by numbering duplicates; a tokenizer without digits cannot number
them, which once sent the search for an unused number through about 10**k candidates."""

import pytest

from ddro.docids.text import tokenize_docids
from ddro.errors import DdroError
from ddro.models.tokenizer import train_subword_tokenizer


def test_a_tokenizer_that_cannot_write_numbers_is_one_clear_error():
    tokenizer = train_subword_tokenizer(["wing lift heat flow shock waves"], 100)  # no digits: [UNK]
    with pytest.raises(DdroError, match="cannot tell the numbers"):
        tokenize_docids(["wing lift"] * 30, tokenizer, 16, "suffix")


def test_a_tokenizer_with_digits_numbers_duplicates():
    tokenizer = train_subword_tokenizer(["wing lift heat flow", " ".join("0123456789")], 100)
    codes, _, strings, groups = tokenize_docids(["wing lift"] * 30, tokenizer, 16, "suffix")
    assert len({tuple(row) for row in codes.tolist()}) == 30 and groups == [list(range(30))]
    assert strings[:3] == ["wing lift", "wing lift 2", "wing lift 3"]
