"""Content-derived docids written in a tokenizer's own tokens: title, url, terms and naive.

Each scheme makes one string per document, the tokenizer cuts it into tokens (at most
`max_tokens`, the last one EOS), and duplicates are made unique (policy `suffix`): within a group
of documents whose token sequences are equal, in collection order, the first keeps its docid and
the k-th (k >= 2) gets the tokens of " k" before EOS (k counts up until the result is unused).

- title: the document title; a document without one uses its first 12 words.
- url: the paper's rule (lower-case, strip the scheme and `www.`, split the URL on `/`; if most
  path segments are meaningful words, the path segments in reverse order then the domain, else the
  title then the domain) or `--url-rule legacy` (title of at most two words: reversed path and
  domain; else title and domain). A document without URL falls back to its title string.
- terms: the document's `--terms` highest tf-idf terms, ordered by descending collection document
  frequency (broad terms first, so docids share prefixes), ties alphabetically.
- naive: the document's position in the collection (0-based) written in digits (DSI's naive ids).
"""

from __future__ import annotations

import re

import numpy as np
from tqdm.auto import tqdm

from ddro.docids.table import pad_rows
from ddro.errors import DdroError, OptionError

TITLE_FALLBACK_WORDS = 12


def load_tokenizer(spec: str):
    from transformers import AutoTokenizer

    from ddro.docids.encoders import minilm_path

    path = minilm_path() if spec == "minilm" else spec
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise DdroError(
            f"--tokenizer {spec!r} cannot be loaded ({str(exc).splitlines()[0][:160]}); "
            "without internet only local paths and 'minilm' work"
        ) from None


def eos_token(tokenizer) -> str:
    token = tokenizer.eos_token or tokenizer.sep_token
    if token is None:
        raise DdroError("the tokenizer has neither an EOS nor a SEP token to end docids with")
    return token


# --- docid strings ---------------------------------------------------------------------------

def title_string(doc) -> str:
    if doc.title.strip():
        return " ".join(doc.title.split())
    words = doc.text.split()[:TITLE_FALLBACK_WORDS]
    return " ".join(words) if words else f"document {doc.doc_id}"


_SCHEME_PREFIX = re.compile(r"^[a-z][a-z0-9+.-]*://")


def _meaningful(segment: str) -> bool:
    """A URL path segment made of words (not an id, number or hash)."""
    stem = re.sub(r"\.(html?|php|aspx?|jsp|cgi)$", "", segment)
    pieces = [p for p in re.split(r"[-_.+~]", stem) if p]
    return bool(pieces) and all(p.isalpha() for p in pieces) and max(len(p) for p in pieces) >= 3


def url_string(doc, rule: str = "paper") -> str:
    title = title_string(doc).lower()
    url = doc.url.strip().lower()
    if not url:
        return title
    url = _SCHEME_PREFIX.sub("", url)
    url = url[4:] if url.startswith("www.") else url
    domain, _, path = url.partition("/")
    segments = [s for s in path.split("/") if s]
    words = [" ".join(re.split(r"[-_.+~]", re.sub(r"\.(html?|php|aspx?|jsp|cgi)$", "", s))).strip() for s in segments]
    if rule == "paper":
        use_path = bool(segments) and sum(map(_meaningful, segments)) > len(segments) / 2
    elif rule == "legacy":
        use_path = len(title.split()) <= 2 and bool(segments)
    else:
        raise OptionError("url_rule", f"{rule!r}: choose paper or legacy")
    parts = list(reversed(words)) + [domain] if use_path else [title, domain]
    return " ".join(" ".join(p for p in parts if p).split())


def document_tfidf(docs):
    """`(CSR matrix [docs, terms], term array)` of title + text: words of two or more letters,
    English stop words out, sublinear tf; `(None, None)` when no document has such a word."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_]{2,}\b", sublinear_tf=True)
    try:
        matrix = vectorizer.fit_transform([d.full_text for d in docs]).tocsr()
    except ValueError:  # every document is empty or stop words only
        return None, None
    return matrix, vectorizer.get_feature_names_out()


def terms_strings(docs, n_terms: int) -> list[str]:
    if n_terms < 1:
        raise OptionError("terms", f"must be at least 1 (got {n_terms})")
    matrix, terms = document_tfidf(docs)
    if matrix is None:
        return [f"document {d.doc_id}" for d in docs]
    df = np.bincount(matrix.indices, minlength=len(terms))
    out = []
    for i, doc in enumerate(tqdm(docs, desc="key terms", unit="doc")):
        start, end = matrix.indptr[i], matrix.indptr[i + 1]
        cols, weights = matrix.indices[start:end], matrix.data[start:end]
        top = sorted(zip(-weights, terms[cols], cols))[:n_terms]
        chosen = sorted(((-df[c], t) for _, t, c in top))
        out.append(" ".join(t for _, t in chosen) if chosen else f"document {doc.doc_id}")
    return out


# --- strings -> token docids -----------------------------------------------------------------

def docid_token_reader(tokenizer):
    """`tokens_of(text)`: the tokenizer's tokens of a docid string (no special tokens)."""
    def tokens_of(text: str) -> tuple[str, ...]:
        return tuple(tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False)["input_ids"]))

    return tokens_of


def check_numbering(tokenizer, tokens_of) -> None:
    """The `suffix` policy numbers duplicates ' 2', ' 3', ...: refuse a tokenizer that cannot tell
    those apart (one that writes digits as its unknown token would make `numbered` try ever longer
    numbers, about 10**k of them for the k-th duplicate)."""
    if len({tokens_of(f" {rank}") for rank in range(2, 12)}) < 10:
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise DdroError(f"tokenizer {name!r} cannot tell the numbers 2-11 apart, so --collisions suffix cannot "
                        "number duplicate docids; use --collisions share or a tokenizer that writes digits")


def numbered(sequence: tuple[str, ...], string: str, used: set, tokens_of, body_len: int) -> tuple[tuple[str, ...], str]:
    """A docid taken by another document made unique (`suffix` policy): the first of ' 2', ' 3', ...
    whose tokens, after the docid's first tokens (cut to keep it within `body_len`), make a
    sequence not in `used`; returns that sequence and the string with its number."""
    rank = 2
    while True:
        suffix = tokens_of(f" {rank}")
        candidate = sequence[: body_len - len(suffix)] + suffix
        if candidate not in used:
            return candidate, f"{string} {rank}"
        rank += 1


def tokenize_docids(strings: list[str], tokenizer, max_tokens: int, policy: str):
    """Tokenize docid strings, make them unique under `policy`, end each with EOS.

    Returns (codes, vocab, strings as finally used, raw collision groups).
    """
    from ddro.docids.table import COLLISION_POLICIES

    if policy not in COLLISION_POLICIES:
        raise DdroError(f"unknown collision policy {policy!r} (choose from {', '.join(COLLISION_POLICIES)})")
    if max_tokens < 2:
        raise OptionError("max_tokens", f"must be at least 2 (got {max_tokens})")
    eos = eos_token(tokenizer)
    body_len = max_tokens - 1
    tokens_of = docid_token_reader(tokenizer)
    sequences = [tokens_of(s)[:body_len] for s in tqdm(strings, desc="tokenizing docids", unit="doc")]
    first_of: dict[tuple[str, ...], int] = {}
    groups: dict[int, list[int]] = {}
    for i, seq in enumerate(sequences):
        if seq in first_of:
            groups.setdefault(first_of[seq], [first_of[seq]]).append(i)
        else:
            first_of[seq] = i
    raw_groups = sorted(groups.values(), key=lambda g: g[0])
    strings = list(strings)
    if policy == "suffix" and raw_groups:
        check_numbering(tokenizer, tokens_of)
        used = set(sequences)
        for group in raw_groups:
            for doc in group[1:]:
                sequences[doc], strings[doc] = numbered(sequences[doc], strings[doc], used, tokens_of, body_len)
                used.add(sequences[doc])
    sequences = [seq + (eos,) for seq in sequences]
    token_ids = {t: tokenizer.convert_tokens_to_ids(t) for seq in sequences for t in seq}
    vocab = sorted(token_ids, key=lambda t: (token_ids[t], t))
    index = {t: i for i, t in enumerate(vocab)}
    codes = pad_rows([[index[t] for t in seq] for seq in sequences])
    return codes, vocab, strings, raw_groups
