"""The authors' released checkpoints and docid tables, read for search and evaluation.

Released artifacts (docs/method.md): T5-base models
`kiyam/ddro-{msmarco,nq}-{pq,tu}` and docid tables in the dataset `kiyam/ddro-docids`, one
document a line, `[docid]<TAB>id,id,...`, the ids the model's own decoder token ids:

- PQ tables: exactly 24 ids, the id at position m (0-based) one of the 256 codes of sub-space m,
  `base + 256 * m + code`, where `base = vocabulary size - 24 * 256` (the PQ tokens are the last
  6,144 of the vocabulary: T5-base 32,128 + 6,144 = 38,272). No EOS: the released PQ models were
  trained on 24-token docids, and the authors' evaluator generates exactly 24 tokens.
- TU tables: the model's subword ids of the title/URL string, ending in EOS (1).

The table's sequences are the decoder's sequences as they are: nothing is added to the tokenizer
and no EOS is appended to PQ docids. A table whose first line ends in EOS is read as TU, any other
as PQ; every line is then checked against that kind, and any fault is one `FILE:LINE: ...` error.
Documents sharing a docid (PQ collisions) are all returned for it, in table order (the authors'
evaluator shuffles them without a seed).

A document's id is the table's first column without its surrounding brackets, lower-cased as the
authors' evaluator does, white space written as `_` (`released_doc_id`): `[D108472]` -> `d108472`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ddro.batching import pad_input_ids
from ddro.docids.table import PAD, DocidTable, collision_groups
from ddro.errors import DdroError, OptionError, at
from ddro.models.docid_model import DTYPES, DocidModel

PQ_SUBSPACES = 24
PQ_CODES = 256
# Query length of the authors' evaluator (`max_seq_length`): 63 tokens then EOS.
MAX_QUERY_TOKENS = 64
HUB_DATASET_PREFIX = "hf://datasets/"
_IDS = re.compile(r"\d+(?:,\d+)*")


def released_doc_id(label: str) -> str:
    """The document id a table label (or a qrels/test-set doc id) stands for: surrounding brackets
    removed, lower-cased, each run of white space written as `_` (TREC runs are space-separated)."""
    label = label.strip()
    if len(label) >= 2 and label[0] == "[" and label[-1] == "]":
        label = label[1:-1]
    return "_".join(label.lower().split())


def resolve_file(spec: str, option: str) -> Path:
    """A local file, or `hf://datasets/OWNER/NAME/PATH` fetched from the hub (or its cache)."""
    if spec.startswith(HUB_DATASET_PREFIX):
        parts = spec[len(HUB_DATASET_PREFIX):].split("/", 2)
        if len(parts) != 3 or not all(parts):
            raise DdroError(f"{option} {spec}: expected hf://datasets/OWNER/NAME/PATH")
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(f"{parts[0]}/{parts[1]}", parts[2], repo_type="dataset"))
        except Exception as exc:  # offline, not cached, no such file: all say the same to the user
            raise DdroError(f"{option} {spec}: cannot be fetched from the Hugging Face hub and no cached copy "
                            f"exists ({_first_line(exc)}); download it where there is a network and give "
                            "the local file") from None
    path = Path(spec)
    if not path.is_file():
        raise DdroError(f"{spec}: file not found")
    return path


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]


def _check_pq(ids: list[int], vocab_size: int) -> str | None:
    if len(ids) != PQ_SUBSPACES:
        return f"a PQ docid has {PQ_SUBSPACES} token ids, found {len(ids)}"
    base = vocab_size - PQ_SUBSPACES * PQ_CODES
    for m, token in enumerate(ids):
        low = base + PQ_CODES * m
        if not low <= token < low + PQ_CODES:
            return (f"token id {token} at position {m + 1} is not a code of PQ sub-space {m + 1} "
                    f"(ids {low}..{low + PQ_CODES - 1} for a vocabulary of {vocab_size})")
    return None


def _check_tu(ids: list[int], eos: int, pad: int) -> str | None:
    if ids[-1] != eos:
        return f"a TU docid ends in EOS ({eos}), this one in {ids[-1]}"
    if len(ids) < 2:
        return "a TU docid has at least one token before EOS"
    inner = [t for t in ids[:-1] if t in (eos, pad)]
    if inner:
        return f"token id {inner[0]} (EOS or padding) inside a TU docid"
    return None


def _ids_problem(field: str) -> str | None:
    if _IDS.fullmatch(field):
        return None
    if not field:
        return "no token ids after the tab"
    bad = next((p for p in field.split(",") if not p.isascii() or not p.isdigit()), field)
    return f"token id {bad!r} is not a non-negative integer"


def _row_problem(ids: list[int], kind: str, vocab_size: int, eos: int, pad: int) -> str | None:
    beyond = [t for t in ids if t >= vocab_size]
    if beyond:
        return f"token id {beyond[0]} is beyond the model's vocabulary (size {vocab_size})"
    return _check_tu(ids, eos, pad) if kind == "tu" else _check_pq(ids, vocab_size)


def _bad_rows(flat: np.ndarray, lengths: np.ndarray, kind: str, vocab_size: int, eos: int, pad: int) -> np.ndarray:
    """Rows that break a rule of `_row_problem`, found for all rows at once (which rule: `_row_problem`)."""
    starts = np.cumsum(lengths) - lengths
    row = np.repeat(np.arange(len(lengths)), lengths)
    position = np.arange(len(flat)) - starts[row]
    bad = flat >= vocab_size
    if kind == "tu":
        last = position == lengths[row] - 1
        bad |= np.where(last, flat != eos, (flat == eos) | (flat == pad))
        short = lengths < 2
    else:
        low = vocab_size - PQ_SUBSPACES * PQ_CODES + PQ_CODES * position
        bad |= (flat < low) | (flat >= low + PQ_CODES)
        short = lengths != PQ_SUBSPACES
    return np.union1d(np.unique(row[bad]), np.flatnonzero(short))


def read_released_table(path: Path, vocab_size: int, eos: int, pad: int = 0) -> tuple[DocidTable, np.ndarray]:
    """A released docid table file as `(DocidTable, docid_token_ids)`: the table's vocabulary is
    the distinct token ids it uses (as strings), `docid_token_ids` those ids.

    Lines are read up to the first malformed one (no tab, ids that are not integers, a repeated
    document); the ids of the lines before it are then checked all at once, and the first faulty
    line of the file is reported."""
    labels: list[str] = []
    fields: list[str] = []
    first_line: dict[str, int] = {}
    malformed = None  # (line number, message)
    cut_line = None  # a last line without a line end
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.endswith("\n"):
                cut_line = line_no
            parts = raw.rstrip("\r\n").split("\t")
            label = released_doc_id(parts[0])
            if not "".join(parts).strip():
                malformed = (line_no, "empty line (expected '[docid]<TAB>id,id,...')")
            elif len(parts) != 2:
                malformed = (line_no, f"expected '[docid]<TAB>id,id,...', found {len(parts) - 1} tabs")
            elif not label:
                malformed = (line_no, "empty docid label before the tab")
            elif problem := _ids_problem(parts[1].strip()):
                malformed = (line_no, problem)
            elif label in first_line:
                malformed = (line_no, f"document {label} already has a docid on line {first_line[label]}")
            if malformed:
                break
            first_line[label] = line_no
            labels.append(label)
            fields.append(parts[1].strip())
    if not fields and malformed is None:
        raise DdroError(f"{path}: no docids (an empty table)")
    lengths = np.array([f.count(",") + 1 for f in fields], dtype=np.int64)
    flat = np.fromstring(",".join(fields), dtype=np.int64, sep=",") if fields else np.zeros(0, np.int64)
    kind = "tu" if len(flat) and flat[lengths[0] - 1] == eos else "pq"
    bad = _bad_rows(flat, lengths, kind, vocab_size, eos, pad)
    if len(bad):
        i = int(bad[0])
        ids = [int(t) for t in fields[i].split(",")]
        problem = _row_problem(ids, kind, vocab_size, eos, pad)
        malformed = (i + 1, f"{problem} (line 1 made this a {kind.upper()} table)" if i else problem)
    if malformed:
        line_no, message = malformed
        cut = " (the file ends inside this line: truncated?)" if line_no == cut_line else ""
        raise DdroError(f"{at(path, line_no)}: {message}{cut}")
    token_ids, inverse = np.unique(flat, return_inverse=True)
    codes = np.full((len(fields), int(lengths.max())), PAD, dtype=np.int32)
    codes[np.repeat(np.arange(len(fields)), lengths), np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths,
                                                                                      lengths)] = inverse
    table = DocidTable(scheme=f"released-{kind}", doc_ids=labels, codes=codes, vocab=[str(t) for t in token_ids],
                       new_tokens=kind == "pq", options={"source": str(path), "kind": kind},
                       collision_groups=collision_groups(codes), collision_policy="share")
    return table, token_ids.astype(np.int64)


class ReleasedDocidModel(DocidModel):
    """A released checkpoint with its table: docids are the table's token ids exactly (no EOS is
    appended to PQ docids), and queries are lower-cased as the released models were trained on
    them; a query may also come as token ids (the released test sets hold tokenized queries)."""

    def docid_sequences(self) -> np.ndarray:
        codes = self.table.codes.astype(np.int64)
        return np.where(codes == PAD, -1, self.docid_token_ids[np.maximum(codes, 0)])

    def encode(self, texts) -> dict:
        texts = list(texts)
        if texts and not isinstance(texts[0], str):
            pad = self.model.config.pad_token_id if self.model.config.pad_token_id is not None else 0
            input_ids, attention_mask = pad_input_ids([list(t)[: self.max_input_tokens] for t in texts], pad)
            return {"input_ids": input_ids, "attention_mask": attention_mask}
        return super().encode([t.lower() for t in texts])


def load_released(model: str, docids: str, device="cpu", dtype: str = "fp32") -> ReleasedDocidModel:
    """A released checkpoint (hub id or local folder) with a released docid table (a local file or
    `hf://datasets/...`), checked against each other."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

    if dtype not in DTYPES:
        raise DdroError(f"dtype {dtype!r}: choose from {', '.join(DTYPES)}")
    try:
        # The config first: the table is checked against it before the weights are read.
        config = AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as exc:
        if Path(model).is_dir():
            raise OptionError("model", f"{model}: not a Hugging Face checkpoint folder ({_first_line(exc)})") from None
        raise OptionError("model", f"{model}: no local folder of that name, and the Hugging Face hub is not reachable "
                        f"or has no such model, with no cached copy ({_first_line(exc)}); download it where there "
                        "is a network and give its folder") from None
    if config.decoder_start_token_id is None or config.eos_token_id is None:
        raise OptionError("model", f"{model}: its config names no decoder start or EOS token")
    table, token_ids = read_released_table(resolve_file(docids, "--docids"), int(config.vocab_size),
                                           int(config.eos_token_id), int(config.pad_token_id or 0))
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
        network = AutoModelForSeq2SeqLM.from_pretrained(model, config=config)
    except (OSError, ValueError) as exc:
        raise OptionError("model", f"{model}: not a Hugging Face seq2seq checkpoint with a tokenizer "
                        f"({_first_line(exc)})") from None
    network = network.to(device, dtype=DTYPES[dtype]).eval()
    return ReleasedDocidModel(network, tokenizer, table, token_ids, "pretrained", int(config.eos_token_id),
                              int(config.decoder_start_token_id), MAX_QUERY_TOKENS)
