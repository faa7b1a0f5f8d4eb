"""Compare settings over seeds and collections, as the protocol of docs/experiments.md#the-protocol asks.

    python benchmarks/protocol.py --part validation base=runs/cran-s0,runs/cran-s1,runs/cran-s2 \
        teacher=runs/cran-teacher-s0,runs/cran-teacher-s1,runs/cran-teacher-s2 --baseline base

Each `LABEL=FOLDER[,FOLDER...]` is one setting: `ddro run` output folders of that setting, one per
seed, on any collections. For every collection, setting and system the script gives the mean, the
sample standard deviation and the per-seed values of each measure on one part of the split:
`validation` (the training queries SFT held out: what settings are chosen on) or `test` (to report
a choice once it is frozen). With `--baseline`, each other setting's system is tested against the
baseline's same system at the same seed (paired randomization test, per seed). Output: a Markdown
table, or one JSON line per (collection, setting, system) with `--json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

MEASURES = ("RR@10", "nDCG@10")


def part_of(metrics: dict, part: str) -> tuple[dict, dict] | None:
    """`(systems' means, per-query values)` of `part` in a run's metrics, None where it has none."""
    if part == "test":
        return metrics["systems"], metrics["per_query"]
    held = metrics.get("validation")
    return (held["systems"], held["per_query"]) if held else None


def load(settings: list[str], part: str) -> dict:
    """`{(collection, label): {seed: (systems, per_query)}}` of the folders given."""
    found: dict = {}
    for setting in settings:
        label, _, folders = setting.partition("=")
        if not label or not folders:
            sys.exit(f"protocol: {setting!r}: expected LABEL=FOLDER[,FOLDER...]")
        for folder in folders.split(","):
            path = Path(folder) / "metrics.json"
            if not path.is_file():
                sys.exit(f"protocol: {path}: no metrics.json (not a finished `ddro run` folder)")
            metrics = json.loads(path.read_text())
            values = part_of(metrics, part)
            if values is None:
                sys.exit(f"protocol: {folder}: no {part} queries in this run")
            seeds = found.setdefault((Path(metrics["collection"]).name, label), {})
            if metrics["seed"] in seeds:
                sys.exit(f"protocol: {folder}: a second run of {label} with seed {metrics['seed']}")
            seeds[metrics["seed"]] = values
    return found


def summaries(found: dict, baseline: str | None) -> list[dict]:
    from ddro.evaluation import paired_tests

    rows = []
    for (collection, label), seeds in found.items():
        systems = sorted(set.intersection(*(set(means) for means, _ in seeds.values())))
        for system in systems:
            row = {"collection": collection, "setting": label, "system": system, "seeds": sorted(seeds)}
            for measure in MEASURES:
                values = [seeds[s][0][system][measure] for s in sorted(seeds)]
                row[measure] = {"mean": statistics.fmean(values),
                                "sd": statistics.stdev(values) if len(values) > 1 else None, "values": values}
            base = found.get((collection, baseline)) if baseline and label != baseline else None
            if base is not None:
                row["vs_baseline_p"] = {
                    measure: {str(s): paired_tests(seeds[s][1][system], base[s][1][system])[measure]["randomization_p"]
                              for s in sorted(seeds) if s in base and system in base[s][1]}
                    for measure in MEASURES}
            rows.append(row)
    return rows


def markdown(rows: list[dict], part: str, baseline: str | None) -> str:
    header = ["collection", "setting", "system", "seeds"] + [f"{m} ({part}) mean ± sd" for m in MEASURES]
    header += [f"RR@10 p vs {baseline}, per seed"] if baseline else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["collection"], row["setting"], row["system"], str(len(row["seeds"]))]
        for measure in MEASURES:
            mean, sd = row[measure]["mean"], row[measure]["sd"]
            cells.append(f"{mean:.3f}" + (f" ± {sd:.3f}" if sd is not None else ""))
        if baseline:
            p = row.get("vs_baseline_p", {}).get("RR@10", {})
            cells.append(", ".join(f"{v:.2f}" for v in p.values()) or "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("settings", nargs="+", metavar="LABEL=FOLDER[,FOLDER...]")
    parser.add_argument("--part", choices=("validation", "test"), default="validation")
    parser.add_argument("--baseline", help="the setting every other one is tested against, seed by seed")
    parser.add_argument("--json", action="store_true", help="one JSON line per row instead of a table")
    args = parser.parse_args(argv)
    found = load(args.settings, args.part)
    if args.baseline and not any(label == args.baseline for _, label in found):
        sys.exit(f"protocol: --baseline {args.baseline!r} is none of the settings given")
    rows = summaries(found, args.baseline)
    if args.json:
        print("\n".join(json.dumps(row) for row in rows))
    else:
        print(markdown(rows, args.part, args.baseline), end="")


if __name__ == "__main__":
    main()
