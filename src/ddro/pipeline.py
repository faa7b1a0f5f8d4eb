"""`ddro run`: every stage from a collection to `metrics.json`, `report.md` and `report.png`.

Stages (each timed in `metrics.json` -> `timings`): docids, BM25 baseline, dense baseline, SFT
training, search, evaluation. Everything lands in one output folder: `docids/`, `model/`,
`runs/*.trec` (test queries; `runs/validation/*.trec`: the training queries SFT held out),
`metrics.json`, `report.md`, `report.png`, `config.json` (preset, options, versions, seed) and
`manifest.json` (`ddro.manifest`: the command and its inputs' checksums, also in each model and
docid folder). It is written as `.NAME.partial` and renamed when complete
(`outputs.resumable_output_dir`).
Beside the pure systems, reciprocal-rank fusions of them are rows of their own (`fused_runs`).

The dense baseline is exact retrieval with the embeddings the computed docids (pq, rq, hkmeans)
were made from (`ddro.dense`), so the comparison with SFT and DDRO shows what the docid codes keep
and lose; docid schemes made from text (title, url, terms, naive, atomic) have no embeddings and
no dense row.

Under `torchrun` / `accelerate launch` every process runs this function: rank 0 builds the docids
(the others wait and read them), runs the baselines, writes every file and measures; SFT and DDRO
train as DDP and the generative searches are sharded by query (`ddro.distributed`).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

from ddro import distributed
from ddro.bm25 import DEFAULT_STEMMER
from ddro.errors import DdroError
from ddro.models.presets import Preset
from ddro.runs import DEFAULT_K
from ddro.training.ddro import DDROConfig
from ddro.training.sft import SFTConfig


@dataclass
class RunConfig:
    collection: str
    out: str
    preset: Preset
    scheme: str | None = None
    test_fraction: float | None = None
    qg_model: str | None = None
    pseudo_queries_file: str | None = None
    k: int = DEFAULT_K
    beams: int | None = None
    # Widen the beam to k (as `ddro search`): a beam of B ranks at most B documents, so R@k needs B >= k.
    beams_at_least_k: bool = True
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    bm25_stemmer: str = DEFAULT_STEMMER
    # The generative searches' weights: fp32 as trained, or cast (`ddro search --dtype`).
    dtype: str = "fp32"
    # SFT's checkpoints (its other Trainer settings are `SFTConfig`'s defaults).
    sft_save_steps: float = SFTConfig.save_steps
    ddro: DDROConfig | None = None

    def record(self) -> dict:
        """`config.json`'s "run": the preset by name, the DDRO settings as the phase records them."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return values | {"preset": self.preset.name, "ddro": self.ddro.record() if self.ddro else None}


@contextmanager
def timed(timings: dict, name: str):
    """Record the seconds the block takes as `timings["<name>_seconds"]`."""
    start = time.perf_counter()
    yield
    timings[f"{name}_seconds"] = round(time.perf_counter() - start, 2)


def run_docid_config(preset: Preset, scheme: str | None, seed: int, documents: int):
    """The preset's docid options for a collection of `documents` documents; `scheme` (`--scheme`)
    picks another scheme, with the preset's options of that scheme where it has them (so
    `--scheme rq` under `cpu` gives its RQ 4 x 256 at any size, not `DocidConfig`'s defaults).
    """
    from ddro.docids import DocidConfig

    return DocidConfig(**preset.docid_options(documents, scheme), seed=seed)


# The systems whose test rankings are compared by paired tests, where both ran.
COMPARISONS = [("sft", "bm25"), ("ddro", "sft"), ("ddro", "bm25"), ("sft", "dense"), ("ddro", "dense"),
               ("ddro+bm25", "bm25"), ("ddro+bm25+dense", "bm25+dense"), ("sft+bm25", "bm25"),
               ("sft+bm25+dense", "bm25+dense")]


def fused_runs(runs: dict, k: int) -> dict:
    """Reciprocal-rank fusions beside the pure systems, each its own row: BM25 with dense, and the
    generative system (DDRO, else SFT) with BM25 and with both; fusing BM25 and dense alone shows
    what the generative run adds to them."""
    from ddro.runs import fuse_rrf

    generative = "ddro" if "ddro" in runs else "sft" if "sft" in runs else None
    fused = {}
    if "dense" in runs:
        fused["bm25+dense"] = fuse_rrf([runs["bm25"], runs["dense"]], k)
    if generative:
        fused[f"{generative}+bm25"] = fuse_rrf([runs[generative], runs["bm25"]], k)
        if "dense" in runs:
            fused[f"{generative}+bm25+dense"] = fuse_rrf([runs[generative], runs["bm25"], runs["dense"]], k)
    return fused


def _run_file(part: str, name: str) -> str:
    """Test runs keep their place (`runs/<system>.trec`); validation runs go under `runs/validation/`."""
    return f"{name}.trec" if part == "test" else f"{part}/{name}.trec"


def run_pipeline(config: RunConfig) -> dict:
    from ddro.bm25 import load_stemmer
    from ddro.outputs import resumable_output_dir

    load_stemmer(config.bm25_stemmer)  # an unknown name fails before anything is built
    # Everything is written into a work folder that becomes `config.out` when the run is complete.
    with resumable_output_dir(config.out, config.overwrite, config.resume) as work:
        return _run_in(work, config)


def _run_in(out: Path, config: RunConfig) -> dict:
    """`run_pipeline`'s stages, writing into the work folder `out`."""
    from ddro import recipes
    from ddro.bm25 import BM25Retriever
    from ddro.collections import load_collection
    from ddro.collections.base import check_split, validation_part
    from ddro.dense import encoder_retriever
    from ddro.docids import build_docids
    from ddro.docids.schemes import COMPUTED
    from ddro.evaluation import evaluate, json_text, paired_tests, write_report
    from ddro.manifest import (check_and_record, collection_digests, file_digests, folder_digest, versions,
                               write_manifest)
    from ddro.outputs import atomic_files, atomic_write_text
    from ddro.retrieval import GenerativeRetriever, beam_width, search_in_shards
    from ddro.runs import write_trec_run

    timings: dict[str, float] = {}
    preset = config.preset
    collection = load_collection(config.collection, config.test_fraction)
    test_queries = collection.queries_of("test")
    if not test_queries:
        raise DdroError(f"{config.collection}: the split has no test queries (see --test-fraction)")
    docid_config = run_docid_config(preset, config.scheme, config.seed, len(collection.docs))
    docids_stage = recipes.DocidsStage(out / "docids")
    saved_table = docids_stage.load() if config.resume and docids_stage.is_complete() else None
    if saved_table is not None:
        # A model trained on other docids cannot be continued; say so before config.json is replaced.
        saved, wanted = saved_table.options, docid_config.recorded()
        if {k: saved.get(k) for k in wanted} != wanted:
            raise DdroError(f"{docids_stage.folder}: --resume found docids built with {saved}, but this run asks for "
                            f"{wanted} (pass --overwrite, or another --out)")
    inputs = {"collection": collection_digests(config.collection),
              "pseudo_queries_file": file_digests(config.pseudo_queries_file)}
    if config.resume and (out / "config.json").is_file():
        # A model trained on another split would be tested on queries it trained on.
        check_split(json.loads((out / "config.json").read_text()).get("split"), collection.split, out, config.collection)
    check_and_record(out, inputs, config.resume, config.record(), config.seed)
    if distributed.is_main():
        atomic_write_text(out / "config.json", json.dumps({
            "run": config.record(), "preset": preset.to_dict(), "docids": docid_config.recorded(),
            "collection": collection.describe(), "split": collection.split.record(), "versions": versions(),
        }, indent=2) + "\n")

    with timed(timings, "docids"), distributed.main_first():
        if saved_table is not None:
            table = saved_table
        elif distributed.is_main():
            table = build_docids(collection, docid_config)
            docids_stage.save(table)
            write_manifest(docids_stage.folder, {"collection": inputs["collection"]}, docid_config.recorded(),
                           config.seed)
        else:
            table = docids_stage.load()
    runs_dir = out / "runs"
    if distributed.is_main():
        runs_dir.mkdir(exist_ok=True)
    # The training queries SFT held out (and DDRO selects on): every system is measured on them too,
    # so that settings can be chosen without reading the test queries.
    held_out = validation_part(collection.split.train, preset.validation_fraction)
    query_sets = {"test": test_queries, "validation": [q for q in collection.queries_of("train") if q.query_id in held_out]}
    runs: dict[str, dict] = {part: {} for part in query_sets}

    def search_all(name: str, search, shared: bool = False) -> None:
        """`search` each part's queries: on rank 0, or on every process (a search that shares the work)."""
        for part, queries in query_sets.items():
            if not queries:
                continue
            if shared or distributed.is_main():
                runs[part][name] = search(queries)
            if distributed.is_main():
                write_trec_run(runs[part][name], runs_dir / _run_file(part, name), name)

    def generative_search(model_dir: Path):
        """The search of the model just trained (saved in `model_dir`), its weights cast to `config.dtype`."""
        if config.dtype == "fp32":
            retriever = GenerativeRetriever(docid_model)
        else:
            retriever = GenerativeRetriever.load(model_dir, next(docid_model.model.parameters()).device, config.dtype,
                                                 docid_model.precision)
        return lambda queries: search_in_shards(retriever.search, queries, k=config.k, num_beams=beams,
                                                progress=distributed.is_main())

    # The baselines are rank 0's: they neither train nor split.
    with timed(timings, "bm25"):
        if distributed.is_main():
            bm25 = BM25Retriever(stemmer=config.bm25_stemmer)
            bm25.index(collection.docs)
            search_all("bm25", lambda queries: bm25.search(queries, k=config.k))
    if table.scheme in COMPUTED and distributed.is_main():
        with timed(timings, "dense"):
            # The docid encoder's document embeddings, cached when the docids were built.
            dense = encoder_retriever(collection, docid_config.encoder, docid_config.seed, docid_config.cache_dir)
            search_all("dense", lambda queries: dense.search(queries, k=config.k))
    with timed(timings, "sft"):
        docid_model, sft_result = recipes.train_sft(
            collection, table, preset, recipes.SFTStage(out / "model", out / "training", out / "sft_timings.json"),
            config.seed, config.qg_model, config.pseudo_queries_file, resume=config.resume,
            config=SFTConfig(save_steps=config.sft_save_steps))
    inputs["docids"] = folder_digest(docids_stage.folder)
    if distributed.is_main():
        write_manifest(out / "model", inputs, preset.to_dict(), config.seed)
    beams = beam_width(config.beams or preset.beams, config.k, config.beams_at_least_k)
    with timed(timings, "search"):
        search_all("sft", generative_search(out / "model"), shared=True)
    ddro_result = None
    if config.ddro is not None:
        with timed(timings, "ddro"):
            ddro_result = recipes.train_ddro(
                docid_model, collection, config.ddro,
                recipes.DDROStage(out / "model-ddro", out / "training" / "ddro", out / "ddro_summary.json"),
                resume=config.resume)
        if distributed.is_main():
            write_manifest(out / "model-ddro", inputs | {"model": folder_digest(out / "model")}, config.ddro.record(),
                           config.seed)
        with timed(timings, "ddro_search"):
            search_all("ddro", generative_search(out / "model-ddro"), shared=True)
    if not distributed.is_main():
        return distributed.broadcast(None)  # rank 0's metrics
    for part, part_runs in runs.items():
        for name, fused in fused_runs(part_runs, config.k).items():
            part_runs[name] = fused
            write_trec_run(fused, runs_dir / _run_file(part, name), name)
    with timed(timings, "evaluation"):
        qrels = collection.qrels_dict(collection.split.test, "test")
        query_ids = [q.query_id for q in test_queries]
        results = {name: evaluate(run, qrels, query_ids) for name, run in runs["test"].items()}
        comparisons = [(a, b) for a, b in COMPARISONS if a in results and b in results]
        significance = {f"{a}_vs_{b}": paired_tests(results[a]["per_query"], results[b]["per_query"]) for a, b in comparisons}
        validation = None
        if query_sets["validation"]:
            train_qrels = collection.qrels_dict(collection.split.train, "train")
            validation_ids = [q.query_id for q in query_sets["validation"]]
            measured = {name: evaluate(run, train_qrels, validation_ids) for name, run in runs["validation"].items()}
            validation = {"queries": len(validation_ids), "systems": {n: r["aggregate"] for n, r in measured.items()},
                          "per_query": {n: r["per_query"] for n, r in measured.items()}}
    metrics = {
        "collection": collection.name,
        "split": collection.split.describe() | {"rule": collection.split.rule},
        "systems": {name: r["aggregate"] for name, r in results.items()},
        "significance": significance,
        "timings": timings | {f"sft_{k}": v for k, v in sft_result.to_dict().items()},
        "preset": preset.name,
        "scheme": table.scheme,
        "beams": beams,
        "dtype": config.dtype,
        "seed": config.seed,
        "per_query": {name: r["per_query"] for name, r in results.items()},
        # The same systems on the held-out training queries (None when the split has none); DDRO
        # selected its weights on these queries, so its validation numbers are its best ones.
        "validation": validation,
    }
    if ddro_result is not None:
        metrics["ddro"] = {k: v for k, v in ddro_result.to_dict().items() if k != "config"}
        # SFT's training time from its stages, also when --resume loaded the model instead of training it.
        metrics["timings"]["ddro_over_sft"] = round(metrics["timings"]["ddro_seconds"]
                                                    / max(sft_result.training_seconds, 1e-9), 3)
    with atomic_files(out) as final:
        (final / "metrics.json").write_text(json_text(metrics))
        write_report(metrics, final)
    return distributed.broadcast(metrics)
