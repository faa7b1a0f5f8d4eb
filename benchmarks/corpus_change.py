"""Forgetting and gain when documents are added to a trained model (`ddro add-docs`), against the
model before adding and a full retrain on all documents (issue 22's measurement).

The documents whose SHA-1 of "ddro-new-documents:" + id falls below 0.10 are the new ones (a
fixed rule, blind to queries); the model is trained (SFT then DDRO, as `ddro run`) on the other
90%, then given the new 10% in one step, and, from the same 90% model, in two steps of 5% (the
keys below 0.05, then the rest); `ADDS` lists the settings of the add step tried. Every model is
measured on the validation queries (the training queries SFT held out), which choose the add
step's defaults, and on the test queries: all of them, those with a relevant document among the
new ones ("new"), and those whose relevant documents are all old ("old"). Each step's seconds are
timed in this run (compare them as ratios).

    python benchmarks/corpus_change.py --collection ../shared/data/cranfield --out runs/corpus-change/cranfield \
        --json benchmarks/results/corpus-change/cranfield.json

Models are kept under --out, and a step whose model is there is loaded, not trained again
(its seconds are then the recorded ones). `--adds` runs some rows only: on NPL, the defaults'

    python benchmarks/corpus_change.py --collection ../shared/data/npl --out runs/corpus-change/npl \
        --adds "add 10%, replay 9, 1 epoch" "add 5% + 5%, replay 9, 1 epoch" \
        --json benchmarks/results/corpus-change-npl.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import time
from pathlib import Path

MEASURES = ["RR@10", "R@100"]
NEW_FRACTION = 0.10
# The additions measured: name, the steps (each a list of documents) from the two 5% halves, and
# the add step's replay and epochs (and learning rate, when not the preset's 1e-3; and whether a
# DDRO round follows). Replay 9, 1 epoch is ddro's default, chosen on the validation queries.
ADDS = [
    ("add 10%, replay 1, 4 epochs", lambda first, second: [first + second], {"replay": 1.0, "epochs": 4.0}),
    ("add 5% + 5%, replay 1, 4 epochs", lambda first, second: [first, second], {"replay": 1.0, "epochs": 4.0}),
    ("add 10%, replay 1, 4 epochs, learning rate 1e-4", lambda first, second: [first + second],
     {"replay": 1.0, "epochs": 4.0, "learning_rate": 1e-4}),
    ("add 10%, replay 1, 4 epochs + DDRO round", lambda first, second: [first + second],
     {"replay": 1.0, "epochs": 4.0, "ddro": True}),
    ("add 10%, replay 2, 4 epochs", lambda first, second: [first + second], {"replay": 2.0, "epochs": 4.0}),
    ("add 10%, replay 3, 4 epochs", lambda first, second: [first + second], {"replay": 3.0, "epochs": 4.0}),
    ("add 10%, replay 3, 2 epochs", lambda first, second: [first + second], {"replay": 3.0, "epochs": 2.0}),
    ("add 10%, replay 5, 2 epochs", lambda first, second: [first + second], {"replay": 5.0, "epochs": 2.0}),
    ("add 10%, replay 5, 1 epoch", lambda first, second: [first + second], {"replay": 5.0, "epochs": 1.0}),
    ("add 10%, replay 9, 1 epoch", lambda first, second: [first + second], {"replay": 9.0, "epochs": 1.0}),
    ("add 5% + 5%, replay 9, 1 epoch", lambda first, second: [first, second], {"replay": 9.0, "epochs": 1.0}),
    ("add 10%, replay 9, 1 epoch + DDRO round", lambda first, second: [first + second],
     {"replay": 9.0, "epochs": 1.0, "ddro": True}),
]


def new_key(doc_id: str) -> float:
    return int(hashlib.sha1(f"ddro-new-documents:{doc_id}".encode()).hexdigest()[:8], 16) / 16**8


def query_groups(queries, qrels, new_ids) -> dict[str, list[str]]:
    """The query ids of all `queries`, of those judging a new document relevant, and of the others."""
    ids = [q.query_id for q in queries]
    touches_new = {q for q in ids if any(d in new_ids for d, rel in qrels.get(q, {}).items() if rel > 0)}
    return {"all": ids, "new": [q for q in ids if q in touches_new], "old": [q for q in ids if q not in touches_new]}


def measure(docid_model, parts: dict, beams: int) -> dict:
    """`{part: {group: measures}}` for each part's `(queries, qrels, groups)`."""
    from ddro.evaluation import evaluate
    from ddro.retrieval import GenerativeRetriever

    retriever = GenerativeRetriever(docid_model)
    out = {}
    for part, (queries, qrels, groups) in parts.items():
        run = retriever.search(queries, k=100, num_beams=beams, progress=False)
        out[part] = {}
        for name, ids in groups.items():
            values = evaluate(run, qrels, ids, MEASURES)["aggregate"]
            out[part][name] = {m: round(v, 4) for m, v in values.items()} | {"queries": len(ids)}
    return out


def trained(collection, folder: Path, preset, seed: int, ddro: bool):
    """SFT (then DDRO) on `collection`, as `ddro run` trains; `(model, seconds)` (the recorded seconds
    when `folder` holds the trained model)."""
    from ddro import recipes
    from ddro.docids import build_docids
    from ddro.pipeline import run_docid_config
    from ddro.training.ddro import DDROConfig

    timed = folder / "seconds.json"
    recorded = json.loads(timed.read_text())["seconds"] if timed.is_file() else None
    start = time.perf_counter()
    stage = recipes.DocidsStage(folder / "docids")
    if not stage.is_complete():
        stage.save(build_docids(collection, run_docid_config(preset, None, seed, len(collection.docs))))
    sft_stage = recipes.SFTStage(folder / "model", folder / "training", folder / "sft_timings.json")
    model, _ = recipes.train_sft(collection, stage.load(), preset, sft_stage, seed, resume=True)
    if ddro:
        recipes.train_ddro(model, collection, DDROConfig(seed=seed),
                           recipes.DDROStage(folder / "model-ddro", folder / "training" / "ddro",
                                             folder / "ddro_summary.json"), resume=True)
    if recorded is None:
        recorded = time.perf_counter() - start
        timed.write_text(json.dumps({"seconds": recorded}) + "\n")
    return model, recorded


def added_to(model_dir: Path, collection, new_docs, folder: Path, preset, replay: float, epochs: float,
             ddro_seed: int | None):
    """The model of `model_dir` given `new_docs` (then a DDRO round seeded `ddro_seed`, unless None);
    `(model, seconds)` (the recorded ones when `folder` holds it)."""
    from ddro.corpus_change import add_documents
    from ddro.models import DocidModel
    from ddro.training.ddro import DDROConfig

    if (folder / "add_summary.json").is_file():
        return DocidModel.load(folder), json.loads((folder / "add_summary.json").read_text())["seconds"]
    model = DocidModel.load(model_dir)
    round_config = None if ddro_seed is None else DDROConfig(seed=ddro_seed)
    result = add_documents(model, collection, new_docs, preset, folder / "training", replay, epochs, ddro=round_config)
    model.save(folder)
    (folder / "add_summary.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return model, result.seconds


def main() -> None:
    from ddro.collections import load_collection
    from ddro.collections.base import validation_part
    from ddro.models import get_preset
    from ddro.retrieval import beam_width

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ddro", dest="ddro", action="store_false", help="SFT models only")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--adds", nargs="+", default=None, choices=[name for name, _, _ in ADDS], metavar="NAME",
                        help="only these rows of ADDS (default: all; on a large collection, e.g. the defaults' "
                             "'add 10%%, replay 9, 1 epoch' and 'add 5%% + 5%%, replay 9, 1 epoch')")
    args = parser.parse_args()
    preset = get_preset("cpu", seed=args.seed)
    beams = beam_width(preset.beams, 100, True)
    collection = load_collection(args.collection)
    keys = {d.doc_id: new_key(d.doc_id) for d in collection.docs}
    old = [d for d in collection.docs if keys[d.doc_id] >= NEW_FRACTION]
    first = [d for d in collection.docs if keys[d.doc_id] < NEW_FRACTION / 2]
    second = [d for d in collection.docs if NEW_FRACTION / 2 <= keys[d.doc_id] < NEW_FRACTION]
    new_ids = {d.doc_id for d in first + second}
    held_out = validation_part(collection.split.train, preset.validation_fraction)
    parts = {}
    for part, queries, qrels in (
            ("test", collection.queries_of("test"), collection.qrels_dict(collection.split.test, "test")),
            ("validation", [q for q in collection.queries_of("train") if q.query_id in held_out],
             collection.qrels_dict(collection.split.train, "train"))):
        parts[part] = (queries, qrels, query_groups(queries, qrels, new_ids))
    last = "model-ddro" if args.ddro else "model"
    rows = {}

    before, seconds = trained(collection.with_documents([d.doc_id for d in old]), args.out / "before", preset,
                              args.seed, args.ddro)
    rows["before (90%)"] = {"seconds": round(seconds, 1), "documents": len(before.table)} | measure(before, parts, beams)
    for name, steps, settings in [add for add in ADDS if args.adds is None or add[0] in args.adds]:
        model_dir, total = args.out / "before" / last, 0.0
        add_preset = get_preset("cpu", None, {"pseudo_learning_rate": settings.get("learning_rate")}, seed=args.seed)
        for n, docs in enumerate(steps(first, second)):
            folder = args.out / f"{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}-{n}"
            model, seconds = added_to(model_dir, collection, docs, folder, add_preset, settings["replay"],
                                      settings["epochs"], args.seed if settings.get("ddro") else None)
            model_dir, total = folder, total + seconds
            row = name if n == len(steps(first, second)) - 1 else f"{name}, first step"
            rows[row] = {"seconds": round(seconds, 1), "documents": len(model.table)} | measure(model, parts, beams)
        rows[name]["seconds_all_steps"] = round(total, 1)
    full, seconds = trained(collection, args.out / "full", preset, args.seed, args.ddro)
    rows["full retrain (100%)"] = {"seconds": round(seconds, 1), "documents": len(full.table)} | measure(full, parts, beams)
    result = {"collection": collection.name, "seed": args.seed, "ddro": args.ddro, "beams": beams,
              "documents": {"old": len(old), "new": len(new_ids), "first 5%": len(first), "second 5%": len(second)},
              "queries": {part: {name: len(ids) for name, ids in groups.items()} for part, (_, _, groups) in parts.items()},
              "rows": rows,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
