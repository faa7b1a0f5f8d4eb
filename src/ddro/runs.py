"""TREC run files: the plain-text exchange format every IR evaluation tool reads.

A run is `{query_id: [(doc_id, score), ...]}`, each list ranked best first. Keeping runs as
files lets a ranking be evaluated, compared or significance-tested later (by ddro, trec_eval or
ir_measures) without re-running the model that produced it.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from ddro.collections.textio import read_json_file, read_lines
from ddro.errors import DdroError, at
from ddro.leniency import tolerated

Run = dict[str, list[tuple[str, float]]]

# Documents ranked per query, unless told otherwise.
DEFAULT_K = 100

# Scores are written with 6 decimals, i.e. in whole micro-units.
DECIMALS = 6
_UNIT = 10**DECIMALS


def _written_scores(scores: list[float]) -> list[int]:
    """Scores as written (micro-units), each strictly below the one before, order kept.

    trec_eval (and ir_measures, pytrec_eval) ignore the rank column and re-sort by score, breaking
    ties by document id, so a ranking whose scores tie or rise would be evaluated in an order
    nobody produced. Each score is rounded to 6 decimals and, where it is >= the previous written
    score, replaced by `previous - 1e-6`. The rule works on the rounded values because two
    scores that differ by less than 1e-6 would otherwise be written as a tie.
    """
    out: list[int] = []
    for score in scores:
        if not math.isfinite(score):
            raise ValueError(f"a run score must be a finite number, not {score}")
        units = round(score * _UNIT)
        if out and units >= out[-1]:
            units = out[-1] - 1
        out.append(units)
    return out


def _format_units(units: int) -> str:
    """Micro-units as a decimal string, exactly (no float rounding on the way out)."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), _UNIT)
    return f"{sign}{whole}.{frac:0{DECIMALS}d}"


def _check_ranking(query_id: str, ranking: list[tuple[str, float]]) -> None:
    """Reject what would make the file unreadable or double-count: blanks in ids, repeated ids."""
    if not query_id or any(c.isspace() for c in query_id):
        raise ValueError(f"query id {query_id!r} is empty or contains white space")
    seen: set[str] = set()
    for doc_id, _ in ranking:
        if not doc_id or any(c.isspace() for c in doc_id):
            raise ValueError(f"query {query_id}: document id {doc_id!r} is empty or contains white space")
        if doc_id in seen:
            raise ValueError(f"query {query_id}: document {doc_id} appears twice in the ranking")
        seen.add(doc_id)


def _run_lines(run: Run, tag: str):
    for query_id, ranking in run.items():
        _check_ranking(query_id, ranking)
        scores = _written_scores([score for _, score in ranking])
        for rank, ((doc_id, _), units) in enumerate(zip(ranking, scores), start=1):
            yield f"{query_id} Q0 {doc_id} {rank} {_format_units(units)} {tag}\n"


def write_trec_run(run: Run, path, tag: str) -> Path:
    """Write `run` as TREC lines `qid Q0 docno rank score tag`, ranks from 1, in the order given.

    Scores are written with 6 decimals and made strictly decreasing within each query: a score
    that, rounded, is >= the previous written one is written as `previous - 1e-6`, so tools that
    re-sort by score see the order given here. A document id repeated within one query is a
    ValueError (trec_eval would count it twice). The file is written beside its target and
    renamed into place, so a reader never sees half a run.
    """
    if any(c.isspace() for c in tag) or not tag:
        raise ValueError(f"run tag must be one non-empty word, not {tag!r}")
    path = Path(path)
    lines = list(_run_lines(run, tag))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise DdroError(f"{path}: cannot write the run there ({exc.strerror}: {exc.filename})") from None
    try:
        # mkstemp makes the file private (0600); a run is as readable as any file the user writes.
        os.chmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w") as fh:
            fh.writelines(lines)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _parse_line(line: str, where: str) -> tuple[str, str, int, float]:
    parts = line.split()
    if len(parts) != 6:
        raise DdroError(f"{where}: a run line has 6 columns (qid Q0 docno rank score tag), found {len(parts)}")
    query_id, _, doc_id, rank, score, _ = parts
    try:
        parsed = query_id, doc_id, int(rank), float(score)
    except ValueError:
        raise DdroError(f"{where}: rank must be an integer and score a number, found {rank!r} and {score!r}") from None
    if not math.isfinite(parsed[3]):
        raise DdroError(f"{where}: score {score!r} is not a finite number")
    if parsed[2] < 0:  # some tools count ranks from 0; none from below
        raise DdroError(f"{where}: rank {rank} is negative")
    return parsed


def read_trec_run(path) -> Run:
    """Read a TREC run file; each query's list is sorted by score, best first (ties: by rank).

    Sorting by score reproduces what trec_eval evaluates; a `.gz` file is read as it is. A malformed line or a (qid, docno) pair
    seen twice is a DdroError naming `path:line` (under `--lenient` it is skipped, the first pair kept).
    """
    path = Path(path)
    if not path.is_file():
        raise DdroError(f"{path}: file not found")
    entries: dict[str, list[tuple[float, int, str]]] = {}
    seen: set[tuple[str, str]] = set()
    for line_no, line in read_lines(path):
        if not line.strip():
            continue
        with tolerated(at(path, line_no)):
            query_id, doc_id, rank, score = _parse_line(line, at(path, line_no))
            if (query_id, doc_id) in seen:
                raise DdroError(f"{at(path, line_no)}: document {doc_id} appears twice for query {query_id}")
            seen.add((query_id, doc_id))
            entries.setdefault(query_id, []).append((score, rank, doc_id))
    return {
        query_id: [(doc_id, score) for score, _, doc_id in sorted(rows, key=lambda r: (-r[0], r[1]))]
        for query_id, rows in entries.items()
    }


def split_record_path(run_path) -> Path:
    """The file beside a run that records the collection split its queries came from
    (`RUN.trec` -> `RUN.trec.split.json`), which `ddro eval` checks."""
    run_path = Path(run_path)
    return run_path.with_name(run_path.name + ".split.json")


def read_split_record(run_path) -> dict | None:
    """The split record (`Split.record()`) beside a run, None when there is none."""
    path = split_record_path(run_path)
    if not path.is_file():
        return None
    record = read_json_file(path)
    if not isinstance(record.get("split"), dict):
        raise DdroError(f"{path}: no 'split' record (the file `ddro search` writes beside its run)")
    return record["split"]


# Reciprocal-rank fusion's constant (Cormack, Clarke and Buettcher, SIGIR 2009), not tuned here.
RRF_K = 60


def fuse_rrf(runs: list[Run], k: int = DEFAULT_K, rrf_k: int = RRF_K) -> Run:
    """Reciprocal-rank fusion of `runs`: each document scores the sum over the runs that rank it
    of `1 / (rrf_k + rank)`, and each query keeps its top `k`. Ties keep the order of first
    appearance (runs in the order given, ranks within each), so the fused run is deterministic.
    A query only some runs rank is fused from those."""
    if not runs:
        raise ValueError("fusion needs at least one run")
    fused: Run = {}
    for query_id in dict.fromkeys(q for run in runs for q in run):
        scores: dict[str, float] = {}
        for run in runs:
            for rank, (doc_id, _) in enumerate(run.get(query_id, []), start=1):
                scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (rrf_k + rank)
        # sorted() is stable: equal scores stay in order of first appearance.
        fused[query_id] = sorted(scores.items(), key=lambda item: -item[1])[:k]
    return fused
