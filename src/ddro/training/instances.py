"""Training examples of the three SFT stages: `(input text, document index)` pairs.

- `index` (stage 1, indexing): the title; up to `passages_per_doc` passages (the title followed by
  consecutive `passage_words`-word chunks of the text); and one string of up to 10 terms sampled
  from the document in proportion to their tf-idf weight.
- `pseudo` (stage 2): pseudo-queries. From a file (`queries_file`, `doc_id<TAB>query` a line, as
  docT5query writes them) the first N of each document's lines; with a query-generation model
  (`qg_model`, docT5query style) N sampled queries per document (top-k 10, at most 32 tokens,
  batched, on the GPU when there is one, cached on disk); otherwise the offline extractive
  generator: the title, the first sentence, then random 8-12-word spans of the text until N
  distinct ones exist (fewer if the document is short).
- `query` (stage 3): every training query paired with each of its relevant documents, except the
  validation part (`collections.base.validation_part`), kept unseen for model selection.
All sampling is seeded per document, so the same inputs give the same examples.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

import numpy as np

from ddro.outputs import file_sha256
from ddro.texts import all_for_tokenizer

logger = logging.getLogger(__name__)

Example = tuple[str, int]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _rng(seed: int, doc: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, doc, salt])


def index_examples(docs, passages_per_doc: int, passage_words: int, seed: int) -> list[Example]:
    from ddro.docids.text import document_tfidf

    out: list[Example] = []
    tfidf, terms = document_tfidf(docs)
    read = passages_per_doc * passage_words
    for i, doc in enumerate(docs):
        if doc.title:
            out.append((doc.title, i))
        # Only the passages' words are split off: a long document's others are never read.
        words = doc.text.split(None, read)[:read]
        for start in range(0, len(words), passage_words):
            chunk = " ".join(words[start:start + passage_words])
            out.append((f"{doc.title} {chunk}".strip(), i))
        if tfidf is not None and tfidf.indptr[i + 1] > tfidf.indptr[i]:
            cols = tfidf.indices[tfidf.indptr[i]:tfidf.indptr[i + 1]]
            weights = tfidf.data[tfidf.indptr[i]:tfidf.indptr[i + 1]]
            picked = _rng(seed, i, 1).choice(len(cols), size=min(10, len(cols)), replace=False, p=weights / weights.sum())
            out.append((" ".join(terms[cols[picked]]), i))
        if not doc.title and not words:
            out.append((doc.doc_id, i))
    return out


def extractive_pseudo_queries(doc, n: int, seed: int, doc_index: int) -> list[str]:
    candidates = []
    if doc.title:
        candidates.append(doc.title)
    sentences = [s for s in _SENTENCE_END.split(doc.text.strip()) if s]
    if sentences:
        candidates.append(" ".join(sentences[0].split()[:32]))
    words = doc.text.split()
    rng = _rng(seed, doc_index, 2)
    attempts = 0
    while len(dict.fromkeys(candidates)) < n and len(words) > 8 and attempts < 4 * n:
        size = int(rng.integers(8, 13))
        start = int(rng.integers(0, max(1, len(words) - size + 1)))
        candidates.append(" ".join(words[start:start + size]))
        attempts += 1
    return list(dict.fromkeys(c for c in candidates if c))[:n]


def qg_inputs(docs) -> list[str]:
    """What a query-generation model reads of each document (not `docids.encoders.document_texts`,
    which embeds them: changing this would change the generated queries and their cache keys)."""
    return [d.full_text.strip() for d in docs]


def pseudo_examples(docs, n: int, seed: int, qg_model: str | None = None, cache_dir: Path | None = None,
                    queries_file: str | Path | None = None) -> list[Example]:
    one_pseudo_query_source(qg_model, queries_file)
    if queries_file:
        queries = [qs[:n] for qs in file_pseudo_queries(queries_file, docs)]
    elif qg_model:
        queries = generated_pseudo_queries(qg_model, qg_inputs(docs), n, seed, cache_dir)
    else:
        queries = [extractive_pseudo_queries(d, n, seed, i) for i, d in enumerate(docs)]
    return [(q, i) for i, qs in enumerate(queries) for q in qs]


def teacher_examples(collection, examples: list[Example], teacher, targets: int) -> list[Example]:
    """For each example `(pseudo-query, document)`, the pairs of the pseudo-query with the teacher's
    best `targets` documents other than its own (a text two documents share is ranked once)."""
    from ddro.collections.base import PseudoQuery

    texts = list(dict.fromkeys(text for text, _ in examples))
    rankings = teacher.rankings([PseudoQuery(str(n), text) for n, text in enumerate(texts)], targets + 1)
    index = {d.doc_id: i for i, d in enumerate(collection.docs)}
    ranked = {text: [index[d] for d in rankings[str(n)]] for n, text in enumerate(texts)}
    return [(text, other) for text, own in examples for other in [d for d in ranked[text] if d != own][:targets]]


def one_pseudo_query_source(qg_model, queries_file) -> None:
    if qg_model and queries_file:
        from ddro.errors import DdroError

        raise DdroError("give either --pseudo-queries-file or --qg-model, not both")


def record_pseudo_queries_file(docid_model, path) -> None:
    """Record `path` (absolute) and its SHA-256 on the model (None: no file), after checking that
    it does not come with a `qg_model` too."""
    from ddro.errors import DdroError

    one_pseudo_query_source(docid_model.qg_model, path)
    if path is None:
        docid_model.pseudo_queries_file = docid_model.pseudo_queries_sha256 = None
        return
    path = Path(path)
    if not path.is_file():
        raise DdroError(f"{path}: pseudo-queries file not found")
    docid_model.pseudo_queries_file, docid_model.pseudo_queries_sha256 = str(path.resolve()), file_sha256(path)


def recorded_pseudo_queries(docid_model, docs) -> list[list[str]]:
    """`file_pseudo_queries` of the file recorded on the model, which must be unchanged."""
    from ddro.errors import DdroError

    path = Path(docid_model.pseudo_queries_file)
    if not path.is_file() or file_sha256(path) != docid_model.pseudo_queries_sha256:
        state = "is missing" if not path.is_file() else "has changed"
        raise DdroError(f"{path}: the pseudo-queries file the model was trained with {state} (SHA-256 recorded: "
                        f"{docid_model.pseudo_queries_sha256}); pass --pseudo-queries-file to use another")
    return file_pseudo_queries(path, docs)


def file_pseudo_queries(path, docs) -> list[list[str]]:
    """Each document's queries from a pseudo-queries file, in file order.

    One `doc_id<TAB>query` a line (blank lines skipped); a line without exactly one tab, with an
    empty doc id or an empty query is a DdroError naming `path:line` (skipped under `--lenient`).
    Lines whose doc id is not in `docs` are skipped and counted (a file made for a larger corpus
    serves a part of it); a file of which no line names a document of `docs` is an error.
    Documents without a line get no pseudo-queries. What was read is logged.
    """
    from ddro.collections.textio import read_lines
    from ddro.errors import DdroError, at
    from ddro.leniency import tolerated

    index = {d.doc_id: i for i, d in enumerate(docs)}
    out: list[list[str]] = [[] for _ in docs]
    unknown, first_unknown = 0, None
    for line_no, line in read_lines(Path(path)):
        if not line.strip():
            continue
        fields = line.split("\t")
        with tolerated(at(path, line_no)):
            if len(fields) != 2:
                raise DdroError(f"{at(path, line_no)}: expected 'doc_id<TAB>query', found {len(fields) - 1} tabs")
            doc_id, query = fields[0].strip(), " ".join(fields[1].split())
            if not doc_id or not query:
                raise DdroError(f"{at(path, line_no)}: empty {'doc id' if not doc_id else 'query'}")
            if doc_id not in index:
                unknown += 1
                first_unknown = first_unknown or f"{doc_id!r} ({at(path, line_no)})"
                continue
            out[index[doc_id]].append(query)
    covered = sum(1 for qs in out if qs)
    if not covered:
        raise DdroError(f"{path}: no line names a document of the collection"
                        + (f" (first doc id: {first_unknown})" if first_unknown else " (an empty file)"))
    skipped = f"; {unknown} lines of documents not in the collection skipped, first {first_unknown}" if unknown else ""
    logger.info(f"pseudo-queries file {path}: {sum(map(len, out))} queries for {covered} of {len(docs)} documents{skipped}")
    return out


def query_examples(collection, doc_index: dict[str, int], repeats: int = 1, exclude=frozenset()) -> list[Example]:
    relevant = collection.qrels_dict(collection.split.train, "train")
    out = []
    for query in collection.queries_of("train"):
        if query.query_id in exclude:
            continue
        for doc_id, rel in relevant.get(query.query_id, {}).items():
            if rel > 0:
                out.extend([(query.text, doc_index[doc_id])] * repeats)
    return out


def generated_pseudo_queries(model_name: str, texts: list[str], n: int, seed: int, cache_dir: Path | None,
                             batch_size: int | None = None) -> list[list[str]]:
    """docT5query-style sampling (top-k 10, <= 32 new tokens), cached as JSON per model and texts;
    batches of `batch_size` documents (default 64 on a GPU, which is used when there is one, 16 on CPU)."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from ddro.devices import torch_device
    from ddro.errors import OptionError

    key = hashlib.sha256(f"{model_name}|{n}|{seed}".encode())
    for text in texts:
        key.update(text.encode("utf-8", "surrogatepass") + b"\0")
    path = Path(cache_dir) / "pseudo_queries" / f"{key.hexdigest()[:32]}.json" if cache_dir else None
    if path is not None and path.is_file():
        return json.loads(path.read_text())
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_name)
        model = AutoModelForSeq2SeqLM.from_pretrained(model_name).eval()
    except (OSError, ValueError) as exc:
        raise OptionError("qg_model", f"{model_name!r} cannot be loaded ({str(exc).splitlines()[0][:160]})") from None
    device = torch.device(torch_device())
    model.to(device)
    batch_size = batch_size or (64 if device.type == "cuda" else 16)
    torch.manual_seed(seed)
    out: list[list[str]] = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch_size), desc="pseudo-queries", unit="batch"):
            batch = tokenizer(all_for_tokenizer(texts[start:start + batch_size], 512), truncation=True, max_length=512,
                              padding=True, return_tensors="pt").to(device)
            generated = model.generate(**batch, do_sample=True, top_k=10, max_new_tokens=32, num_return_sequences=n)
            decoded = tokenizer.batch_decode(generated, skip_special_tokens=True)
            out.extend([q.strip() for q in decoded[j * n:(j + 1) * n] if q.strip()] for j in range(len(decoded) // n))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(out))
        os.replace(tmp, path)
    return out
