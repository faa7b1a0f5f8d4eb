"""`ddro run`: every stage from a collection to `metrics.json`, `report.md` and `report.png`.

Stages (each timed in `metrics.json` -> `timings`): docids, BM25 baseline, SFT training, search,
evaluation. Everything lands in one output folder: `docids/`, `model/`, `runs/*.trec`,
`metrics.json`, `report.md`, `report.png`, `config.json` (preset, options, versions, seed).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from ddro.errors import DdroError
from ddro.models.presets import Preset


@dataclass
class RunConfig:
    collection: str
    out: str
    preset: Preset
    scheme: str | None = None
    test_fraction: float | None = None
    qg_model: str | None = None
    k: int = 100
    beams: int | None = None
    seed: int = 0
    resume: bool = False
    overwrite: bool = False


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for package in ("ddro", "torch", "transformers", "ir_measures", "bm25s", "numpy"):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            out[package] = None
    return out


class _Timer:
    def __init__(self):
        self.timings: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _Span:
            def __enter__(self):
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                timer.timings[f"{name}_seconds"] = round(time.perf_counter() - self.start, 2)

        return _Span()


def run_pipeline(config: RunConfig) -> dict:
    from dataclasses import asdict

    from ddro.bm25 import BM25Retriever
    from ddro.collections import load_collection
    from ddro.docids import DocidConfig, DocidTable, build_docids
    from ddro.evaluation import evaluate, paired_tests, write_report
    from ddro.models import build_docid_model
    from ddro.retrieval import GenerativeRetriever
    from ddro.runs import write_trec_run
    from ddro.training.sft import stage_examples_for, train_sft

    out = Path(config.out)
    if out.exists() and any(out.iterdir()) and not (config.resume or config.overwrite):
        raise DdroError(f"{out}: folder exists and is not empty (pass --resume to continue it or --overwrite)")
    if config.overwrite and not config.resume and out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    timer = _Timer()
    preset = config.preset
    collection = load_collection(config.collection, config.test_fraction)
    test_queries = collection.queries_of("test")
    if not test_queries:
        raise DdroError(f"{config.collection}: the split has no test queries (see --test-fraction)")
    docid_options = dict(preset.docids)
    if config.scheme:
        docid_options = {"scheme": config.scheme, "encoder": docid_options.get("encoder", "minilm")}
    docid_config = DocidConfig(**docid_options, seed=config.seed)
    (out / "config.json").write_text(json.dumps({
        "run": asdict(config) | {"preset": preset.name}, "preset": preset.to_dict(), "docids": docid_config.recorded(),
        "collection": collection.describe(), "versions": versions(),
    }, indent=2) + "\n")

    with timer("docids"):
        if config.resume and (out / "docids" / "table.json").is_file():
            table = DocidTable.load(out / "docids")
        else:
            table = build_docids(collection, docid_config)
            table.save(out / "docids")
    runs_dir = out / "runs"
    runs_dir.mkdir(exist_ok=True)
    with timer("bm25"):
        bm25 = BM25Retriever()
        bm25.index(collection.docs)
        bm25_run = bm25.search(test_queries, k=config.k)
        write_trec_run(bm25_run, runs_dir / "bm25.trec", "bm25")
    with timer("sft"):
        model_dir = out / "model"
        if config.resume and (model_dir / "ddro_model.json").is_file():
            from ddro.models import DocidModel

            docid_model = DocidModel.load(model_dir)
            stage_timings = json.loads((out / "sft_timings.json").read_text())
        else:
            docid_model = build_docid_model(preset, table, [f"{d.title} {d.text}" for d in collection.docs], config.seed)
            examples = stage_examples_for(collection, docid_model, preset, config.qg_model)
            stage_timings = train_sft(docid_model, examples, preset, out / "training", resume=config.resume)
            docid_model.save(model_dir)
            (out / "sft_timings.json").write_text(json.dumps(stage_timings) + "\n")
    with timer("search"):
        retriever = GenerativeRetriever(docid_model)
        beams = max(config.beams or preset.beams, 1)
        sft_run = retriever.search(test_queries, k=config.k, num_beams=beams)
        write_trec_run(sft_run, runs_dir / "sft.trec", "sft")
    with timer("evaluation"):
        qrels = collection.qrels_dict(collection.split.test)
        query_ids = [q.query_id for q in test_queries]
        results = {name: evaluate(run, qrels, query_ids) for name, run in (("bm25", bm25_run), ("sft", sft_run))}
        significance = {"sft_vs_bm25": paired_tests(results["sft"]["per_query"], results["bm25"]["per_query"])}
    metrics = {
        "collection": collection.name,
        "split": collection.split.describe() | {"rule": collection.split.rule},
        "systems": {name: r["aggregate"] for name, r in results.items()},
        "significance": significance,
        "timings": timer.timings | {f"sft_{k}": v for k, v in stage_timings.items()},
        "preset": preset.name,
        "scheme": table.scheme,
        "beams": beams,
        "seed": config.seed,
        "per_query": {name: r["per_query"] for name, r in results.items()},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_report(metrics, out)
    return metrics
