"""Render the result tables of README.md and docs/ from the files under benchmarks/results/.

    python benchmarks/render_results.py            # rewrite the tables in place
    python benchmarks/render_results.py --check    # exit 1 if a committed table differs from its files

A table sits between `<!-- table:NAME -->` and `<!-- /table -->` in a Markdown file; everything
between the two markers is generated. Sources:

- `results/runs/<name>/`: one `ddro run` each, `metrics.json`, `config.json` and `command.txt`
  (the exact command, one line). Every folder present is rendered, in `RUN_ORDER` first.
- `results/baselines.jsonl`, `results/docid-ceiling-minilm.jsonl`, `results/decoding-*.json`,
  `results/trie-scale-*.json`, `results/scale-*.json`, `results/kmeans-choice-*.jsonl`,
  `results/service-load-*.json`, `results/span-index-*.json`, `results/corpus-change-*.json`: benchmark outputs; `results/ngram/<name>/`:
  `ddro run --scheme ngram` folders, as `runs/` holds them; `results/commands.json` names the command that
  wrote each file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path("benchmarks/results")
TARGETS = (Path("README.md"), Path("docs/results.md"), Path("docs/decoding.md"), Path("docs/scaling.md"),
           Path("docs/serving.md"), Path("docs/experiments.md"))
MARKER = re.compile(r"(<!-- table:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)

RUN_ORDER = ("cranfield", "npl", "lisa-bare")
COLLECTION_LABELS = {"cranfield": "Cranfield", "npl": "NPL", "lisa": "LISA"}
SYSTEMS = ("bm25", "dense", "sft", "ddro")
SYSTEM_LABELS = {"bm25": "BM25", "dense": "dense", "sft": "SFT", "ddro": "DDRO"}
RUN_MEASURES = ("RR@10", "nDCG@10", "R@10", "R@100", "Success@1", "Success@10")
HEADLINE_MEASURES = ("RR@10", "nDCG@10")
TESTED_MEASURES = ("RR@10", "nDCG@10")
BASELINE_LABELS = {"bm25-english": "BM25, English (Snowball) stemmer (default)", "bm25-none": "BM25, unstemmed",
                   "bm25-porter": "BM25, Porter stemmer", "dense-minilm": "dense, MiniLM (exact)"}


# --- formatting ------------------------------------------------------------------------------

def number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def p_value(value) -> str:
    if value is None:
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def commands_block(commands: list[str]) -> str:
    return "```bash\n" + "\n".join(commands) + "\n```\n" if commands else ""


def bold_best(values: list) -> list[str]:
    present = [v for v in values if v is not None]
    best = max(present) if present else None
    return [f"**{number(v)}**" if v is not None and v == best and len(present) > 1 else number(v) for v in values]


def collection_label(name: str) -> str:
    return COLLECTION_LABELS.get(Path(name).name, Path(name).name)


# --- sources ---------------------------------------------------------------------------------

class Run:
    """One `ddro run` folder under `results/runs/`."""

    def __init__(self, folder: Path):
        self.name = folder.name
        self.metrics = json.loads((folder / "metrics.json").read_text())
        self.config = json.loads((folder / "config.json").read_text())
        self.command = (folder / "command.txt").read_text().strip()

    @property
    def label(self) -> str:
        split = self.metrics["split"]
        bare = ", bare corpus" if split["train_queries"] == 0 else ""
        return f"{collection_label(self.metrics['collection'])}{bare} ({split['test_queries']})"

    def systems(self) -> list[str]:
        present = self.metrics["systems"]
        return [s for s in SYSTEMS if s in present] + sorted(set(present) - set(SYSTEMS))


def load_runs(results: Path) -> list[Run]:
    folder = results / "runs"
    names = sorted(p.name for p in folder.iterdir() if (p / "metrics.json").is_file()) if folder.is_dir() else []
    ordered = [n for n in RUN_ORDER if n in names] + [n for n in names if n not in RUN_ORDER]
    return [Run(folder / n) for n in ordered]


def load_commands(results: Path) -> dict[str, list[str]]:
    path = results / "commands.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def missing(source: str) -> str:
    return f"*No result file yet ({source}).*\n"


# --- tables ----------------------------------------------------------------------------------

def headline_table(results: Path) -> str:
    runs = load_runs(results)
    if not runs:
        return missing("benchmarks/results/runs/")
    rows = []
    for run in runs:
        systems = run.metrics["systems"]
        for measure in HEADLINE_MEASURES:
            rows.append([run.label, measure, *bold_best([systems.get(s, {}).get(measure) for s in SYSTEMS])])
    header = ["collection (test queries)", "measure", *(SYSTEM_LABELS[s] for s in SYSTEMS)]
    return table(header, rows) + "\n" + commands_block([run.command for run in runs])


def runs_table(results: Path) -> str:
    runs = load_runs(results)
    if not runs:
        return missing("benchmarks/results/runs/")
    rows = [[run.label, SYSTEM_LABELS.get(system, system), *(number(run.metrics["systems"][system].get(m))
                                                            for m in RUN_MEASURES)]
            for run in runs for system in run.systems()]
    return (table(["collection (test queries)", "system", *RUN_MEASURES], rows) + "\n"
            + commands_block([run.command for run in runs]))


def significance_table(results: Path) -> str:
    runs = load_runs(results)
    if not runs:
        return missing("benchmarks/results/runs/")
    header = ["collection", "comparison",
              *(f"{m} p (randomization / t-test)" for m in TESTED_MEASURES), "RR@10 mean difference"]
    rows = []
    for run in runs:
        for comparison, tests in run.metrics["significance"].items():
            cells = [f"{p_value(tests[m]['randomization_p'])} / {p_value(tests[m]['t_test_p'])}" if m in tests else "n/a"
                     for m in TESTED_MEASURES]
            difference = tests.get("RR@10", {}).get("mean_difference")
            rows.append([run.label, comparison, *cells, "n/a" if difference is None else f"{difference:+.3f}"])
    return table(header, rows)


def run_details_table(results: Path) -> str:
    runs = load_runs(results)
    if not runs:
        return missing("benchmarks/results/runs/")
    header = ["collection (test queries)", "preset", "docids", "beams", "split (train / test queries)",
              "SFT s", "DDRO s", "DDRO / SFT", "DDRO pairs", "DDRO step kept (of)", "total s", "torch, transformers"]
    rows = []
    for run in runs:
        m, timings, versions = run.metrics, run.metrics["timings"], run.config.get("versions", {})
        ddro = m.get("ddro", {})
        total = sum(v for k, v in timings.items() if k.endswith("_seconds") and not k.startswith("sft_"))
        rows.append([
            run.label, m.get("preset", "?"), docid_shape(run.config.get("docids", {}), m.get("scheme", "?")),
            str(m.get("beams", "?")),
            f"{m['split']['rule']} ({m['split']['train_queries']} / {m['split']['test_queries']})",
            _seconds(timings.get("sft_seconds")), _seconds(timings.get("ddro_seconds")),
            number(timings.get("ddro_over_sft")) if "ddro_over_sft" in timings else "n/a",
            f"{ddro['pairs']:,}" if "pairs" in ddro else "n/a",
            f"{ddro['selected_step']} ({ddro['steps']})" if "selected_step" in ddro else "n/a",
            _seconds(total),
            ", ".join(str(versions.get(p)) for p in ("torch", "transformers")) if versions else "n/a",
        ])
    return table(header, rows)


def docid_shape(docids: dict, scheme: str) -> str:
    """`pq 4 x 256` from a run's docid options (config.json), else the scheme's name."""
    if docids.get("scheme") == "pq":
        return f"pq {docids['pq_m']} x {docids['pq_k']}"
    if docids.get("scheme") == "rq":
        return f"rq {docids['rq_levels']} x {docids['rq_k']}"
    return docids.get("scheme", scheme)


def _seconds(value) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def baselines_table(results: Path) -> str:
    records = read_jsonl(results / "baselines.jsonl")
    if not records:
        return missing("benchmarks/results/baselines.jsonl")
    rows, tests = [], []
    for record in records:
        label = f"{collection_label(record['collection'])} ({record['test_queries']})"
        for system, measures in record["systems"].items():
            rows.append([label, BASELINE_LABELS.get(system, system), *(number(measures.get(m)) for m in RUN_MEASURES)])
        for comparison, values in record["significance"].items():
            tests.append([label, comparison, *(f"{p_value(values[m]['randomization_p'])} / "
                                               f"{p_value(values[m]['t_test_p'])}" for m in TESTED_MEASURES)])
    return (table(["collection (test queries)", "system", *RUN_MEASURES], rows) + "\n"
            + table(["collection", "comparison", *(f"{m} p (randomization / t-test)" for m in TESTED_MEASURES)], tests)
            + "\n" + commands_block(load_commands(results).get("baselines.jsonl", [])))


def docid_ceiling_table(results: Path) -> str:
    records = read_jsonl(results / "docid-ceiling-minilm.jsonl")
    if not records:
        return missing("benchmarks/results/docid-ceiling-minilm.jsonl")
    rows = []
    for record in records:
        label = f"{collection_label(record['collection'])} ({record['documents']:,} documents)"
        queries = f"{record['queries']} ({record['query_count']})"
        for row in record["rows"]:
            share = row.get("unique_share")
            rows.append([label, queries, row["docids"], "n/a" if share is None else f"{100 * share:.0f}%",
                         number(row["RR@10"]), number(row["nDCG@10"]), number(row["R@100"])])
    header = ["collection", "queries", "docids", "own code", "RR@10", "nDCG@10", "R@100"]
    return table(header, rows) + "\n" + commands_block(load_commands(results).get("docid-ceiling-minilm.jsonl", []))


def decoding_table(results: Path) -> str:
    files = sorted(results.glob("decoding-*.json"), key=lambda p: p.stem)
    if not files:
        return missing("benchmarks/results/decoding-*.json")
    commands = load_commands(results)
    header = ["file: device, model, dtype", "beams", "batch", "(a) HF unconstrained", "(a') ours unconstrained",
              "(b) ddro", "(c) prefix fn", "b/a", "b/a'", "c/b", "b = c"]
    rows, used = [], []
    for path in files:
        report = json.loads(path.read_text())
        where = (f"`{path.name}`: {report['device_name']} ({report['threads']} threads), model `{report['model']}` "
                 f"({report['parameters'] / 1e6:.1f} M parameters), {report['dtype']}")
        for i, row in enumerate(report["rows"]):
            rows.append([where if i == 0 else "", f"{row['beams']:,}", str(report["batch_size"]),
                         *(f"{row[k]:.2f}" for k in ("unconstrained_hf_ms_per_query", "unconstrained_ours_ms_per_query",
                                                      "ddro_ms_per_query", "prefix_fn_ms_per_query", "b_over_a",
                                                      "b_over_unconstrained_ours", "c_over_b")),
                         f"{row['identical_queries']}/{row['queries']}"])
        used += commands.get(path.name, [])
    return table(header, rows) + "\n" + commands_block(used)


def trie_table(results: Path) -> str:
    files = sorted(results.glob("trie-scale-*.json"), key=lambda p: p.stem)
    if not files:
        return missing("benchmarks/results/trie-scale-*.json; `python benchmarks/trie_scale.py --docids 1000000 "
                       "--length 24 --json > benchmarks/results/trie-scale-cpu.json` on an otherwise idle machine")
    commands = load_commands(results)
    header = ["file", "docids", "build s", "peak memory building", "trie size", "bytes per docid",
              "walk + mask, prefixes of depth", "one step from carried states", "threads"]
    rows, used = [], []
    for path in files:
        r = json.loads(path.read_text())
        rows.append([f"`{path.name}`", f"{r['docids']:,} x {r['length']}", f"{r['build_seconds']:.2f}",
                     f"{r['peak_build_memory_mb']:.0f} MB", f"{r['trie_memory_mb']:.0f} MB", f"{r['bytes_per_docid']:.1f}",
                     f"{r['lookup_mask_ms']:.2f} ms ({r['lookup_prefixes']:,} of depth {r['lookup_depth']})",
                     f"{r['step_from_carried_state_ms']:.2f} ms", str(r["torch_threads"])])
        used += commands.get(path.name, [])
    return table(header, rows) + "\n" + commands_block(used)


SCALE_STAGES = {"docids_pq": "docids, PQ 4 x 256", "docids_rq": "docids, RQ 4 x 256", "docids_atomic": "docids, atomic",
                "bm25_index": "BM25 index", "negatives": "BM25 top 1,000 + band negatives", "model": "cpu model built",
                "trie": "trie + docid lookup", "search": "constrained search"}


def scale_table(results: Path) -> str:
    files = sorted(results.glob("scale-*.json"), key=lambda p: p.stem)
    if not files:
        return missing("benchmarks/results/scale-*.json")
    commands = load_commands(results)
    out, used = [], []
    for path in files:
        report = json.loads(path.read_text())
        sizes = report["sizes"]
        header = ["stage"] + [f"{size['documents']:,} docs: s, peak RSS (added)" for size in sizes] + ["k (s ~ N^k)"]
        rows = [[SCALE_STAGES.get(name, name)]
                + [f"{size['stages'][name]['seconds']:.2f} s, {size['stages'][name]['rss_peak_mb'] / 1024:.1f} GiB "
                   f"(+{size['stages'][name]['rss_added_mb']:.0f} MB)" for size in sizes]
                + [f"{report['exponent_k'][name]:.2f}"] for name in sizes[0]["stages"]]
        settings = report["settings"]
        out.append(f"`{path.name}`: {settings['queries']:,} queries, {settings['words']} words a document, "
                   f"search of {settings['search_queries']} queries at beam {settings['beams']}, "
                   f"{report['torch_threads']} torch threads.\n\n" + table(header, rows))
        used += commands.get(path.name, [])
    return "\n".join(out) + "\n" + commands_block(used)


def kmeans_choice_table(results: Path) -> str:
    files = sorted(results.glob("kmeans-choice-*.jsonl"), key=lambda p: p.stem)
    if not files:
        return missing("benchmarks/results/kmeans-choice-*.jsonl")
    commands = load_commands(results)
    methods = ("sklearn-kmeans", "sklearn-minibatch", "faiss")
    header = ["file", "points x dims, K"] + [f"{m}: s, error" for m in methods]
    rows, used = [], []
    for path in files:
        for i, row in enumerate(read_jsonl(path)):
            rows.append([f"`{path.name}`" if i == 0 else "", f"{row['points']:,} x {row['dims']}, {row['k']}"]
                        + [f"{row[m]['seconds']:.1f}, {row[m]['error']:.2f}" if m in row else "not run" for m in methods])
        used += commands.get(path.name, [])
    return table(header, rows) + "\n" + commands_block(used)


def service_load_table(results: Path) -> str:
    files = sorted(results.glob("service-load-*.json"), key=lambda p: p.stem)
    if not files:
        return missing("benchmarks/results/service-load-*.json")
    commands = load_commands(results)
    header = ["file", "mode", "concurrency", "requests", "queries/s", "p50 ms", "p95 ms", "p99 ms", "statuses",
              "malformed answered", "mean batch"]
    rows, used = [], []
    for path in files:
        report = json.loads(path.read_text())
        for mode, found in report["modes"].items():
            malformed = ", ".join(f"{n} x {s}" for s, n in sorted(found["malformed"]["statuses"].items()))
            for i, run in enumerate(found["runs"]):
                statuses = ", ".join(f"{n} x {s}" for s, n in sorted(run["statuses"].items()))
                first = i == 0 and mode == next(iter(report["modes"]))
                rows.append([f"`{path.name}`" if first else "",
                             mode if i == 0 else "", str(run["concurrency"]), f"{run['requests']:,}",
                             f"{run['queries_per_second']:.1f}", f"{run['p50_ms']:.0f}", f"{run['p95_ms']:.0f}",
                             f"{run['p99_ms']:.0f}", statuses, malformed if i == 0 else "",
                             f"{found['mean_batch_queries']}" if i == 0 else ""])
        ratios = report.get("batched_over_one_at_a_time_qps", {})
        if ratios:
            rows.append(["", "batched / one at a time", *[""] * 2,
                         ", ".join(f"{r}x at {c}" for c, r in ratios.items()), *[""] * 6])
        used += commands.get(path.name, [])
    return table(header, rows) + "\n" + commands_block(used)


def ngram_table(results: Path) -> str:
    """Each `results/ngram/<name>/` run (`--scheme ngram`) beside BM25 and the fixed docids of `results/runs/<collection>/`."""
    folder = results / "ngram"
    runs = [Run(p) for p in sorted(folder.iterdir()) if (p / "metrics.json").is_file()] if folder.is_dir() else []
    if not runs:
        return missing("benchmarks/results/ngram/")
    fixed = {run.metrics["collection"]: run for run in load_runs(results)}
    measures = ("RR@10", "nDCG@10", "R@100")
    rows = []
    for run in runs:
        systems = run.metrics["systems"]
        rows.append([run.label, "BM25", "", *(number(systems["bm25"].get(m)) for m in measures)])
        base = fixed.get(run.metrics["collection"])
        if base is not None:
            shape = docid_shape(base.config.get("docids", {}), base.metrics.get("scheme", "?"))
            rows += [[run.label, SYSTEM_LABELS[s], shape, *(number(base.metrics["systems"][s].get(m)) for m in measures)]
                     for s in ("sft", "ddro") if s in base.metrics["systems"]]
        rows += [[run.label, SYSTEM_LABELS[s], "ngram", *(number(systems[s].get(m)) for m in measures)]
                 for s in ("sft", "ddro") if s in systems]
    commands = [run.command for run in runs] + [base.command for base in fixed.values()
                                                if base.metrics["collection"] in {r.metrics["collection"] for r in runs}]
    return table(["collection (test queries)", "system", "docids", *measures], rows) + "\n" + commands_block(commands)


def span_index_table(results: Path) -> str:
    files = sorted(results.glob("span-index-*.json"), key=lambda p: p.stem)
    if not files:
        return missing("benchmarks/results/span-index-*.json")
    commands = load_commands(results)
    header = ["collection", "tokens", "index MB", "index build s", "fm-index build s", "beams",
              "queries/s ngram", "queries/s trie", "constraint ms a step, ngram / trie", "ratio"]
    rows, used = [], []
    for path in files:
        r = json.loads(path.read_text())
        for beams, search in r["searches"].items():
            ngram, trie = search["ngram"], search["trie"]
            rows.append([r["collection"], f"{r['tokens']:,}", f"{r['index_mb']:.1f}", f"{r['index_build_seconds']:.2f}",
                         f"{r['fm_index_build_seconds']:.2f}", beams, f"{ngram['queries_per_second']:.1f}",
                         f"{trie['queries_per_second']:.1f} ({trie['scheme']})",
                         f"{ngram['mean_step_ms']:.2f} / {trie['mean_step_ms']:.2f}", f"{search['step_ratio']:.1f}"])
        used += commands.get(path.name, [])
    return table(header, rows) + "\n" + commands_block(used)


def corpus_change_table(results: Path, part: str = "test") -> str:
    """`benchmarks/corpus_change.py`: each model's RR@10 and R@100 on one part's queries (all, those
    judging a new document, the others), its seconds against the full retrain's, and the old
    queries' RR@10 against the model before adding."""
    files = sorted(results.glob("corpus-change-*.json"), key=lambda p: p.stem)
    if not files:
        return missing("benchmarks/results/corpus-change-*.json")
    commands = load_commands(results)
    header = ["collection (queries: all / new / old)", "model", "documents", "seconds", "÷ full retrain",
              "RR@10 all", "RR@10 new", "RR@10 old", "old vs before", "R@100 all", "R@100 new", "R@100 old"]
    rows, used = [], []
    for path in files:
        r = json.loads(path.read_text())
        full = r["rows"]["full retrain (100%)"]["seconds"]
        before = r["rows"]["before (90%)"][part]["old"]["RR@10"]
        counts = " / ".join(str(r["queries"][part][group]) for group in ("all", "new", "old"))
        # A row recorded elsewhere may lack a part (NPL's full retrain: a `ddro run`'s test queries).
        for i, (name, row) in enumerate((name, row) for name, row in r["rows"].items() if part in row):
            seconds = row.get("seconds_all_steps", row["seconds"])
            ratio = "" if name.startswith(("before", "full")) else f"{seconds / full:.2f}"
            change = "" if name.startswith("before") else f"{row[part]['old']['RR@10'] - before:+.3f}"
            rows.append([f"{collection_label(r['collection'])} ({counts})" if i == 0 else "", name,
                         f"{row['documents']:,}", f"{seconds:.0f}", ratio,
                         *(number(row[part][group]["RR@10"]) for group in ("all", "new", "old")), change,
                         *(number(row[part][group]["R@100"]) for group in ("all", "new", "old"))])
        used += commands.get(path.name, [])
    return table(header, rows) + "\n" + commands_block(used)


TABLES = {
    "headline": headline_table,
    "runs": runs_table,
    "significance": significance_table,
    "run-details": run_details_table,
    "baselines": baselines_table,
    "docid-ceiling": docid_ceiling_table,
    "decoding": decoding_table,
    "trie": trie_table,
    "scale": scale_table,
    "kmeans-choice": kmeans_choice_table,
    "service-load": service_load_table,
    "ngram": ngram_table,
    "span-index": span_index_table,
    "corpus-change": corpus_change_table,
    "corpus-change-validation": lambda results: corpus_change_table(results, "validation"),
}


# --- rendering -------------------------------------------------------------------------------

def render_text(text: str, results: Path, where: str = "") -> tuple[str, list[str]]:
    """`text` with every marked table rendered, and the names of the tables it holds."""
    names: list[str] = []

    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name not in TABLES:
            raise SystemExit(f"{where}: unknown table {name!r} (known: {', '.join(TABLES)})")
        names.append(name)
        return match.group(1) + TABLES[name](results) + match.group(4)

    return MARKER.sub(replace, text), names


def render(root: Path = ROOT) -> dict[Path, tuple[str, str]]:
    """`{target: (committed text, rendered text)}` for every target file under `root`."""
    out, placed = {}, set()
    for target in TARGETS:
        path = root / target
        text = path.read_text()
        rendered, names = render_text(text, root / RESULTS, str(target))
        placed.update(names)
        out[target] = (text, rendered)
    unplaced = set(TABLES) - placed
    if unplaced:
        raise SystemExit(f"tables placed in no file: {', '.join(sorted(unplaced))}")
    return out


def main(argv=None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a table differs from its files")
    args = parser.parse_args(argv)
    stale = []
    for target, (committed, rendered) in render(root).items():
        if committed == rendered:
            continue
        stale.append(str(target))
        if not args.check:
            (root / target).write_text(rendered)
    if args.check and stale:
        print(f"stale tables in {', '.join(stale)}: run `python benchmarks/render_results.py`", file=sys.stderr)
        return 1
    if stale:
        print(f"rendered {', '.join(stale)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
