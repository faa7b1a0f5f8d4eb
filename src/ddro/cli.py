"""The `ddro` command line.

Every subcommand reads and writes plain files, so a user can start or stop at any stage. A user
error (bad path, malformed line, unknown option value) ends with one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import io
import json
import signal
import sys
import threading
import time
import typing
from pathlib import Path

from ddro import distributed
from ddro.collections.base import check_split
from ddro.errors import DdroError, OptionError, Terminated
from ddro.logs import show_on_stderr


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other user error
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_dataclass_options(parser: argparse.ArgumentParser, cls, skip=()) -> None:
    """One `--option-name` per dataclass field, typed and defaulted from the field."""
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name.startswith("_"):
            continue
        kind = {"int": int, "float": float, "str": str, "str | None": str, "int | None": int, "float | None": float,
                "bool": None}[str(f.type)]
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if kind is None:
            state = "on" if f.default else "off"
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                                help=f"{help_text} (default: {state})".strip())
        else:
            parser.add_argument(flag, type=kind, default=f.default, help=f"{help_text} (default: {f.default})".strip())


# The group of the Trainer's own options: they are those of the installed transformers.
TRAINER_OPTIONS = "Trainer (transformers.TrainingArguments)"


def add_config_options(parser: argparse.ArgumentParser, cls, title: str, skip=()) -> None:
    """The fields of a `TrainingArguments` config as options, each declared as `HfArgumentParser`
    declares it (`--name`, `--name-with-dashes` and the field's `aliases`), in two groups: the
    fields ddro declares (`title`) and the Trainer's own."""
    from transformers import HfArgumentParser, TrainingArguments

    hints = typing.get_type_hints(cls)
    own = {name for klass in cls.__mro__ if issubclass(klass, TrainingArguments) and klass is not TrainingArguments
           for name in vars(klass).get("__annotations__", {})}
    # A Trainer field whose flag one of ddro's aliases took (`--warmup-ratio` is `warmup_steps`'s
    # alias; transformers 5.2 also has a field `warmup_ratio`) is left to its default.
    claimed = {alias for f in dataclasses.fields(cls) if f.name in own for alias in f.metadata.get("aliases", [])}
    groups = {True: parser.add_argument_group(title),
              False: parser.add_argument_group(TRAINER_OPTIONS)}
    for f in dataclasses.fields(cls):
        if not f.init or f.name in skip:
            continue
        if f.name not in own and {f"--{f.name}", "--" + f.name.replace("_", "-")} & claimed:
            continue
        option = copy.copy(f)  # HfArgumentParser rewrites the type it reads
        option.type = hints[f.name]
        # argparse reads `%` in help as a format: a Trainer help text's own `%` is escaped.
        own_help = f.metadata.get("help", "").replace("%", "%%")
        option.metadata = {**f.metadata, "help": f"{own_help} (default: %(default)s)".strip()}
        HfArgumentParser._parse_dataclass_field(groups[f.name in own], option)


def config_from_args(cls, args):
    """`cls` from the parsed options named after its fields."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.init and hasattr(args, f.name)})


def flag_of(parser: argparse.ArgumentParser, field: str) -> str:
    """The option a setting's field is given by (its last spelling: an alias or the dashed name),
    searched through every subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flag = flag_of(sub, field)
                if flag:
                    return flag
        elif action.dest == field and action.option_strings:
            return action.option_strings[-1]
    return ""


def ranged(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: `kind` (int or float) within the bounds, finite; anything else is a usage
    error naming the option and the value (one line, exit 2) before any work starts."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            lower = "" if low is None else f"{'above' if low_open else 'at least'} {low:g}"
            upper = "" if high is None else f"{'below' if high_open else 'at most'} {high:g}"
            raise argparse.ArgumentTypeError(f"must be {' and '.join(filter(None, (lower, upper)))}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


POSITIVE = ranged(int, 1)
NON_NEGATIVE = ranged(int, 0)
FRACTION = ranged(float, 0, 1, low_open=True)


def _add_collection_options(parser, required: bool = True) -> None:
    parser.add_argument("--collection", required=required, metavar="SRC",
                        help="collection folder (BEIR, MS MARCO TSV, Cranfield/NPL/LISA) or irds:<id>")
    parser.add_argument("--test-fraction", type=FRACTION, default=None,
                        help="fraction of judged queries used for testing when the collection has no split "
                             "of its own (default 1/3; 1.0 = every query is a test query)")
    parser.add_argument("--lenient", action="store_true",
                        help="skip malformed lines of the collection, query, qrels, run and pseudo-query files "
                             "(bad fields, duplicate or unknown ids, empty records) instead of stopping; how many "
                             "were skipped is printed on stderr (docid tables and model folders are always read "
                             "exactly)")


def cmd_docids(args) -> int:
    from ddro.collections import load_collection
    from ddro.docids import DocidConfig, build_docids
    from ddro.manifest import collection_digests, write_manifest
    from ddro.outputs import atomic_output_dir, check_output_dir

    if not distributed.is_main():  # one table, built once: the other processes of a launcher wait
        return 0
    out = Path(args.out)
    check_output_dir(out, args.overwrite)
    config = config_from_args(DocidConfig, args)
    collection = load_collection(args.collection, args.test_fraction)
    start = time.perf_counter()
    table = build_docids(collection, config)
    seconds = time.perf_counter() - start
    stats = table.stats() | {"scheme": config.scheme, "build_seconds": round(seconds, 3),
                             "options": table.options, "collection": collection.describe()}
    with atomic_output_dir(out, args.overwrite) as tmp:
        table.save(tmp)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
        write_manifest(tmp, {"collection": collection_digests(args.collection)}, config.recorded(), config.seed)
    print(f"docids: {collection.name} scheme={config.scheme}: {stats['documents']} documents, "
          f"{stats['unique_docids']} unique docids, {stats['collisions']} collisions ({table.collision_policy}), "
          f"length <= {stats['docid_length']}, vocab {stats['vocab_size']}, {seconds:.1f} s -> {out}")
    return 0


def cmd_inspect(args) -> int:
    from ddro.collections import load_collection

    collection = load_collection(args.collection, args.test_fraction)
    print(json.dumps(collection.describe(), indent=2))
    return 0


def cmd_train_sft(args) -> int:
    from ddro import recipes
    from ddro.collections import load_collection
    from ddro.docids import DocidTable
    from ddro.manifest import check_and_record, inputs_from
    from ddro.outputs import check_resumable_output_dir, resumable_output_dir
    from ddro.training.sft import SFTConfig

    out = Path(args.out)
    check_resumable_output_dir(out, args.overwrite, args.resume)
    preset = preset_from_args(args)
    collection = load_collection(args.collection, args.test_fraction)
    table = DocidTable.load(args.docids)
    collection = recipes.check_documents(table.doc_ids, collection, args.docids, args.collection)
    inputs = inputs_from(args.collection, "docids", args.docids, "the docid table",
                         {"pseudo_queries_file": args.pseudo_queries_file})
    start = time.perf_counter()
    with resumable_output_dir(out, args.overwrite, args.resume) as work:
        check_and_record(work, inputs, args.resume, preset.to_dict(), args.seed)
        _, result = recipes.train_sft(collection, table, preset, recipes.SFTStage.in_folder(work), args.seed,
                                      args.qg_model, args.pseudo_queries_file, resume=args.resume,
                                      config=config_from_args(SFTConfig, args))
    counts = ", ".join(f"{name} {stage.examples}" for name, stage in result.stages.items())
    print(f"train sft: preset={preset.name} examples: {counts}; {time.perf_counter() - start:.0f} s -> {out}")
    return 0


# `--seed` is the model's option under `ddro run`; each run sets the Trainer's folder.
RUN_SKIPS = ("seed", "output_dir")
# SFT's stages take their epochs, learning rate, batch size and seed from the preset.
SFT_SKIPS = ("output_dir", "seed", "data_seed", "num_train_epochs", "learning_rate", "per_device_train_batch_size")


def _pseudo_query_source_for_ddro(model, qg_model, pseudo_queries_file) -> None:
    """An explicit --qg-model or --pseudo-queries-file replaces the source the model recorded."""
    from ddro.training.instances import one_pseudo_query_source, record_pseudo_queries_file

    one_pseudo_query_source(qg_model, pseudo_queries_file)
    if pseudo_queries_file:
        model.qg_model = None
        record_pseudo_queries_file(model, pseudo_queries_file)
    elif qg_model:
        model.qg_model = qg_model
        record_pseudo_queries_file(model, None)


def cmd_train_ddro(args) -> int:
    from ddro import recipes
    from ddro.collections import load_collection
    from ddro.models import DocidModel
    from ddro.manifest import check_and_record, inputs_from
    from ddro.outputs import check_resumable_output_dir, resumable_output_dir
    from ddro.training.ddro import DDROConfig

    out = Path(args.out)
    check_resumable_output_dir(out, args.overwrite, args.resume)
    config = config_from_args(DDROConfig, args)
    collection = load_collection(args.collection, args.test_fraction)
    model = DocidModel.load(args.model)
    collection = recipes.check_documents(model.table.doc_ids, collection, args.model, args.collection)
    check_split(model.split, collection.split, args.model, args.collection)
    inputs = inputs_from(args.collection, "model", args.model, "the SFT model",
                         {"pseudo_queries_file": args.pseudo_queries_file, "negatives_run": config.negatives_run})
    _pseudo_query_source_for_ddro(model, args.qg_model, args.pseudo_queries_file)
    model.precision = args.precision or model.precision
    with resumable_output_dir(out, args.overwrite, args.resume) as work:
        check_and_record(work, inputs, args.resume, config.record(), config.seed)
        result = recipes.train_ddro(model, collection, config, recipes.DDROStage.in_folder(work), resume=args.resume)
    print(f"train ddro: {result.pairs} pairs from {result.train_queries} queries, {result.steps} steps, "
          f"{result.selection()}; {result.seconds:.0f} s -> {out}")
    return 0


def cmd_add_docs(args) -> int:
    from ddro.collections import load_collection, load_documents
    from ddro.corpus_change import add_documents
    from ddro.docids import DocidTable
    from ddro.manifest import collection_digests, file_digests, folder_digest, write_manifest
    from ddro.models import DocidModel, get_preset
    from ddro.models.docid_model import MODEL_FILE
    from ddro.training.ddro import DDROConfig
    from ddro.outputs import atomic_output_dir, check_output_dir

    if not distributed.is_main():
        return 0
    out = Path(args.out)
    check_output_dir(out, args.overwrite)
    preset = get_preset(args.preset, None, {f"pseudo_{name}": getattr(args, f"add_{name}")
                                            for name in ("learning_rate", "batch_size")}, seed=args.seed)
    ddro = config_from_args(DDROConfig, args) if args.ddro else None
    collection = load_collection(args.collection, args.test_fraction)
    if not (Path(args.model) / MODEL_FILE).is_file():
        raise DdroError(f"{args.model}: not a ddro model folder (no {MODEL_FILE})")
    known = set(DocidTable.load(Path(args.model) / "docids").doc_ids)  # checked before the weights load
    if args.documents:
        new_docs = load_documents(args.documents)
        repeated = next((d.doc_id for d in new_docs if d.doc_id in known), None)
        if repeated is not None:
            raise DdroError(f"{args.documents}: document {repeated!r} is already in {args.model}")
    else:
        new_docs = [d for d in collection.docs if d.doc_id not in known]
        if not new_docs:
            raise DdroError(f"{args.collection}: every document is already in {args.model} (give --documents)")
    model = DocidModel.load(args.model)
    check_split(model.split, collection.split, args.model, args.collection)
    with atomic_output_dir(out, args.overwrite) as tmp:
        result = add_documents(model, collection, new_docs, preset, tmp / "training", args.replay, args.add_epochs,
                               ddro=ddro)
        model.save(tmp)
        (tmp / "add_summary.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        inputs = {"collection": collection_digests(args.collection), "model": folder_digest(args.model)}
        if args.documents:
            inputs["documents"] = file_digests(args.documents) if Path(args.documents).is_file() else {}
        write_manifest(tmp, inputs, preset.to_dict() | {"replay": args.replay, "epochs": args.add_epochs,
                                                        "ddro": ddro.record() if ddro else None}, args.seed)
    round_note = f", DDRO round on {result.ddro['pairs']} pairs" if result.ddro else ""
    print(f"add-docs: {result.documents} documents added ({result.new_tokens} new docid tokens), trained on "
          f"{result.examples} examples ({result.replayed} replayed, {result.query_examples} from queries){round_note}; "
          f"{result.seconds:.0f} s -> {out}")
    return 0


def cmd_remove_docs(args) -> int:
    from ddro.collections import load_documents
    from ddro.corpus_change import remove_documents
    from ddro.manifest import file_digests, folder_digest, write_manifest
    from ddro.models import DocidModel
    from ddro.outputs import atomic_output_dir, check_output_dir

    if not distributed.is_main():
        return 0
    out = Path(args.out)
    check_output_dir(out, args.overwrite)
    model = DocidModel.load(args.model)
    path = Path(args.documents)
    if path.is_file() and path.suffix == ".txt":
        doc_ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        doc_ids = [d.doc_id for d in load_documents(args.documents)]
    removed = remove_documents(model, doc_ids)
    with atomic_output_dir(out, args.overwrite) as tmp:
        model.save(tmp)
        write_manifest(tmp, {"model": folder_digest(args.model), "documents": file_digests(args.documents)
                             if path.is_file() else {}}, {"removed": removed})
    print(f"remove-docs: {removed} documents removed, {len(model.table)} left -> {out}")
    return 0


def _queries_from_args(args):
    """`(queries, description, collection)` from `--queries-file` (collection None) or from
    `--collection`'s `--queries` part."""
    from ddro.collections import load_collection
    from ddro.querysets import read_queries

    if (args.collection is None) == (args.queries_file is None):
        raise DdroError("give either --collection or --queries-file")
    if args.queries_file:
        return read_queries(args.queries_file), f"queries of {args.queries_file}", None
    collection = load_collection(args.collection, args.test_fraction)
    queries = collection.queries if args.queries == "all" else collection.queries_of(args.queries)
    return queries, f"{args.queries} queries", collection


def cmd_search(args) -> int:
    from ddro.querysets import is_tokenized
    from ddro.retrieval import GenerativeRetriever, beam_width, search_in_shards
    from ddro.devices import torch_device
    from ddro.runs import split_record_path, write_trec_run

    device = torch_device(args.device)
    queries, described, collection = _queries_from_args(args)
    if args.docids:
        from ddro.released import load_released

        retriever = GenerativeRetriever(load_released(args.model, args.docids, device, args.dtype))
        retriever.docid_model.precision = args.precision or retriever.docid_model.precision
    elif is_tokenized(queries):
        raise DdroError(f"{args.queries_file}: a released test set holds T5 token ids; search it with a released "
                        "checkpoint and its table (--docids)")
    else:
        retriever = GenerativeRetriever.load(args.model, device, args.dtype, args.precision)
        if collection is not None:
            from ddro.recipes import check_documents

            # A model of another collection would name documents this one does not have.
            check_documents(retriever.doc_ids, collection, args.model, args.collection)
            check_split(retriever.docid_model.split, collection.split, args.model, args.collection)
    start = time.perf_counter()
    beams = beam_width(args.beams, args.k, args.beams_at_least_k)
    run = search_in_shards(retriever.search, queries, args.batch_size, k=args.k, num_beams=beams,
                           length_penalty=args.length_penalty, progress=distributed.is_main())
    seconds = time.perf_counter() - start
    if not distributed.is_main():
        return 0
    write_trec_run(run, Path(args.out), args.tag)
    if collection is not None:  # which split's queries these are, for `ddro eval` to check
        record = {"split": collection.split.record(), "queries": args.queries, "model": args.model}
        split_record_path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"search: {len(queries)} {described}, beams {beams}, {args.dtype} weights, "
          f"{retriever.docid_model.precision} precision, "
          f"{len(queries) / max(seconds, 1e-9):.2f} queries/s -> {args.out}")
    return 0


def cmd_eval(args) -> int:
    from ddro.collections import load_collection
    from ddro.evaluation import evaluate
    from ddro.runs import read_split_record, read_trec_run

    if (args.collection is None) == (args.qrels is None):
        raise DdroError("give either --collection or --qrels")
    if args.queries_file and not args.qrels:
        raise DdroError("--queries-file goes with --qrels (a collection's queries are chosen with --queries)")
    run = read_trec_run(Path(args.run))
    if not run:
        raise DdroError(f"{args.run}: no run lines to evaluate (an empty run)")
    if args.qrels:
        return _eval_with_qrels(args, run)
    collection = load_collection(args.collection, args.test_fraction)
    recorded = read_split_record(args.run)  # written by `ddro search`
    if recorded is not None:
        check_split(recorded, collection.split, args.run, args.collection)
    run = _known_ids(args.run, run, collection, args.collection)
    if not run:  # --lenient left every line out
        raise DdroError(f"{args.run}: no run line names a query and a document of {args.collection}")
    judged = set(collection.judged_query_ids())
    queries = collection.queries if args.queries == "all" else collection.queries_of(args.queries)
    query_ids = [q.query_id for q in queries if q.query_id in judged]
    if not query_ids:
        raise DdroError(f"{args.collection}: no judged {args.queries} queries to evaluate (see --queries, --test-fraction)")
    result = evaluate(run, collection.qrels_dict(query_ids, None if args.queries == "all" else args.queries), query_ids)
    print(json.dumps({"run": args.run, "queries": len(query_ids), "split": collection.split.describe(),
                      "measures": result["aggregate"]}, indent=2))
    return 0


def _known_ids(run_path, run, collection, source):
    """The run, checked against the collection: a run naming queries or documents it does not have
    was made for another one (under --lenient those lines are left out and counted instead)."""
    from ddro.leniency import tolerated

    known_queries, known_docs = {q.query_id for q in collection.queries}, {d.doc_id for d in collection.docs}
    for kind, known in (("query", lambda q, d: q in known_queries), ("document", lambda q, d: d in known_docs)):
        unknown = [(q, d) for q, ranked in run.items() for d, _ in ranked if not known(q, d)]
        if unknown:
            ids = list(dict.fromkeys(q if kind == "query" else d for q, d in unknown))
            with tolerated(str(run_path), lines=len(unknown)):
                raise DdroError(f"{run_path}: {len(ids)} {kind} ids are not in {source} (first: {ids[0]!r}); "
                                "a run of another collection?")
            run = {q: kept for q, ranked in run.items() if (kept := [(d, s) for d, s in ranked if known(q, d)])}
    return run


def _eval_with_qrels(args, run) -> int:
    """`ddro eval --qrels`: every judged query (of `--queries-file` when given), doc ids compared as
    `ddro.released.released_doc_id` writes them."""
    from ddro.evaluation import evaluate
    from ddro.querysets import normalized_run, read_qrels, read_queries

    qrels = read_qrels(args.qrels)
    judged = [q for q, docs in qrels.items() if any(rel > 0 for rel in docs.values())]
    if args.queries_file:
        wanted = {q.query_id for q in read_queries(args.queries_file)}
        judged = [q for q in judged if q in wanted]
    if not judged:
        raise DdroError(f"{args.qrels}: no query with a relevant judgment to evaluate")
    result = evaluate(normalized_run(run), qrels, judged)
    print(json.dumps({"run": args.run, "qrels": args.qrels, "queries": len(judged), "measures": result["aggregate"]},
                     indent=2))
    return 0


def cmd_serve(args) -> int:
    from ddro.serving.server import load_app, require_serving_packages, serve

    require_serving_packages()
    from ddro.serving.app import Batching, Limits

    batching = Batching(args.batch_window_ms, args.max_batch, args.max_waiting)
    limits = Limits(max_hits=args.max_hits, max_beams=args.max_beams, max_query_chars=args.max_query_chars)
    app = load_app(args.model, args.collection, args.device, args.dtype, args.precision, limits=limits,
                   batching=batching, default_beams=args.beams)
    print(f"serve: {args.model} on http://{args.host}:{args.port}/ (search page at /, API at /v1/search)",
          flush=True)
    try:
        serve(app, args.host, args.port)
    except Terminated:  # uvicorn stopped gracefully, then passed the SIGTERM on: a clean stop
        pass
    return 0


def cmd_run(args) -> int:
    from ddro.pipeline import RunConfig, run_pipeline
    from ddro.training.ddro import DDROConfig

    config = RunConfig(collection=args.collection, out=args.out, preset=preset_from_args(args), scheme=args.scheme,
                       test_fraction=args.test_fraction, qg_model=args.qg_model,
                       pseudo_queries_file=args.pseudo_queries_file, k=args.k, beams=args.beams,
                       beams_at_least_k=args.beams_at_least_k,
                       seed=args.seed, resume=args.resume, overwrite=args.overwrite, bm25_stemmer=args.bm25_stemmer,
                       dtype=args.dtype, sft_save_steps=args.sft_save_steps,
                       ddro=config_from_args(DDROConfig, args) if args.ddro else None)
    start = time.perf_counter()
    metrics = run_pipeline(config)
    systems = metrics["systems"]
    scores = ", ".join(f"{name} {values['RR@10']:.3f}" for name, values in systems.items())
    tests = ", ".join(f"{name} p={values['RR@10']['randomization_p']:.3g}" for name, values in metrics["significance"].items())
    print(f"run: {metrics['collection']} {metrics['split']['test_queries']} test queries: RR@10 {scores} ({tests}); "
          f"{time.perf_counter() - start:.0f} s -> {args.out}/metrics.json")
    return 0


def preset_from_args(args):
    """The preset named by `--preset`, with `--model`, `--seed`, `--untied-output` and the
    per-stage options applied."""
    from ddro.models import get_preset
    from ddro.models.presets import STAGES

    overrides = {f"{stage}_{name}": getattr(args, f"{stage}_{name}")
                 for stage in STAGES for name in ("epochs", "learning_rate", "batch_size")}
    fields = {"seed": args.seed} | ({"tie_output": False} if args.untied_output else {})
    # `--validation-fraction`: SFT's own option under `train sft`; under `ddro run` the DDRO option,
    # so that both phases hold out the same queries.
    fields |= {name: getattr(args, name) for name in ("replay", "query_repeats", "pseudo_queries_per_doc",
                                                      "passages_per_doc", "precision", "validation_fraction",
                                                      "pseudo_teacher", "pseudo_teacher_targets", "docid_init")
               if getattr(args, name, None) is not None}
    return get_preset(args.preset, args.model, overrides, **fields)


def _add_model_options(parser) -> None:
    from ddro.models import DEFAULT_PRESET, PRESETS
    from ddro.models.docid_init import INITS
    from ddro.models.presets import STAGES
    from ddro.teacher import TEACHERS

    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                        help=f"model and training preset (default: {DEFAULT_PRESET})")
    parser.add_argument("--model", default=None, help="a Hugging Face seq2seq checkpoint (id or local path) to "
                        "start from instead of the preset's architecture, e.g. t5-base")
    parser.add_argument("--qg-model", default=None, help="a query-generation model (docT5query style) for the "
                        "pseudo-queries of stage 2 (default: the offline extractive generator)")
    parser.add_argument("--pseudo-queries-file", default=None, metavar="FILE", help="pseudo-queries for stage 2 "
                        "and DDRO from a file, 'doc_id<TAB>query' a line (docT5query output), instead of --qg-model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--untied-output", action="store_true",
                        help="give the decoder an output head of its own instead of tying it to the embeddings "
                             "(the cpu preset's decoder; refused for T5 presets, which transformers always ties, "
                             "and with --model, whose checkpoint keeps its own)")
    for stage in STAGES:
        parser.add_argument(f"--{stage}-epochs", type=ranged(float, 0), default=None, help=f"epochs of stage {stage} (default: the preset's)")
        parser.add_argument(f"--{stage}-learning-rate", type=ranged(float, 0, low_open=True), default=None, help=f"learning rate of stage {stage}")
        parser.add_argument(f"--{stage}-batch-size", type=POSITIVE, default=None, help=f"batch size of stage {stage}")
    parser.add_argument("--replay", type=ranged(float, 0), default=None, help="examples of stages 1-2 mixed into the query "
                        "stage, as a multiple of its own size (default: the preset's)")
    parser.add_argument("--query-repeats", type=NON_NEGATIVE, default=None, help="times each training query is repeated in stage 3")
    parser.add_argument("--pseudo-queries-per-doc", type=NON_NEGATIVE, default=None, help="pseudo-queries per document (stage 2)")
    parser.add_argument("--passages-per-doc", type=NON_NEGATIVE, default=None, help="passages per document (stage 1)")
    parser.add_argument("--pseudo-teacher", default=None, choices=TEACHERS, help="also pair each stage-2 "
                        "pseudo-query with this teacher's best other documents (default: its own document only)")
    parser.add_argument("--pseudo-teacher-targets", type=POSITIVE, default=None, help="with --pseudo-teacher, how many "
                        "of the teacher's documents each pseudo-query is paired with (default: the preset's)")
    parser.add_argument("--docid-init", default=None, choices=INITS, help="start the decoder's docid token rows "
                        "from the pq/rq codes' centroids in the docid encoder's embeddings (needs a decoder as wide "
                        "as the embeddings, as the cpu preset's; default: random rows)")
    _add_precision_option(parser, "(default: the preset's: bf16 for t5-base, fp32 for the others); "
                          "recorded in the model folder, which searches with it")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in the same folder")
    parser.add_argument("--overwrite", action="store_true", help="replace the output folder if it exists")


def _add_dtype_option(parser) -> None:
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"],
                        help="type the weights are cast to for search (default fp32; bf16 is 1.5-1.8x as fast on CPUs "
                             "with AVX-512 BF16 and on GPUs; fp16 is for GPUs without bf16, slow on CPUs; scores stay "
                             "fp32); unlike --precision it rounds the weights themselves: faster, but not the "
                             "arithmetic the model was trained with")


def _add_precision_option(parser, default_help: str) -> None:
    from ddro.precision import PRECISIONS

    # fp16 is left out: T5's activations overflow it (ddro.precision).
    parser.add_argument("--precision", default=None, choices=PRECISIONS,
                        help="arithmetic of every model pass: fp32, or bf16 autocast over fp32 weights "
                             f"(fp16 overflows T5) {default_help}")


def build_parser() -> argparse.ArgumentParser:
    from ddro import __version__
    from ddro.corpus_change import DEFAULT_EPOCHS as DEFAULT_ADD_EPOCHS, DEFAULT_REPLAY
    from ddro.models import DEFAULT_PRESET, PRESETS
    from ddro.docids import SCHEMES, DocidConfig
    from ddro.retrieval import DEFAULT_BEAMS, DEFAULT_SEARCH_BATCH
    from ddro.runs import DEFAULT_K
    from ddro.training.ddro import DDROConfig
    from ddro.training.sft import SFTConfig

    parser = _Parser(prog="ddro", description="Generative document retrieval with DDRO.")
    parser.add_argument("--version", action="version", version=f"ddro {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("docids", help="build a docid table for a collection")
    _add_collection_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for the table")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    add_dataclass_options(p, DocidConfig, skip=("scheme",))
    p.add_argument("--scheme", required=True, choices=SCHEMES, help="docid scheme")
    p.set_defaults(func=cmd_docids, writes_folder=True)

    p = sub.add_parser("inspect", help="print a collection's counts, split and reader notes as JSON")
    _add_collection_options(p)
    p.set_defaults(func=cmd_inspect)

    train = sub.add_parser("train", help="train a model").add_subparsers(dest="method", required=True,
                                                                          parser_class=_Parser)
    p = train.add_parser("sft", help="the three next-token SFT stages (indexing, pseudo-queries, queries)")
    _add_collection_options(p)
    p.add_argument("--docids", required=True, metavar="DIR", help="a docid table written by `ddro docids`")
    p.add_argument("--out", required=True, metavar="DIR", help="the model folder to write")
    _add_model_options(p)
    p.add_argument("--validation-fraction", type=ranged(float, 0, 1, high_open=True), default=None,
                   help="training queries held out of the query stage for DDRO's model selection (default: "
                        "the preset's, 0.2; on MS MARCO's 367k training queries a few percent is plenty)")
    add_config_options(p, SFTConfig, "SFT stages", skip=SFT_SKIPS)
    p.set_defaults(func=cmd_train_sft, writes_folder=True)

    p = train.add_parser("ddro", help="the DDRO pairwise phase on an SFT model")
    _add_collection_options(p)
    p.add_argument("--model", required=True, metavar="SFT_DIR", help="a model folder written by `ddro train sft`")
    p.add_argument("--out", required=True, metavar="DIR", help="the model folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace the output folder if it exists")
    p.add_argument("--qg-model", default=None, help="a query-generation model (docT5query style) for the "
                   "pseudo-queries (default: the one SFT's stage 2 used, as the model records; else extractive spans)")
    p.add_argument("--pseudo-queries-file", default=None, metavar="FILE", help="pseudo-queries from a file, "
                   "'doc_id<TAB>query' a line (default: the file SFT's stage 2 read, as the model records)")
    _add_precision_option(p, "(default: the one the SFT model was trained with, as it records)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted phase from its last checkpoint")
    add_config_options(p, DDROConfig, "DDRO phase", skip=("output_dir",))
    p.set_defaults(func=cmd_train_ddro, writes_folder=True)

    p = sub.add_parser("add-docs", help="add documents to a trained model: docids from the kept codebooks, "
                       "then training on them with replay of the old ones")
    _add_collection_options(p)
    p.add_argument("--model", required=True, metavar="DIR", help="a model folder written by training")
    p.add_argument("--documents", default=None, metavar="SRC", help="the documents to add: a .jsonl corpus (BEIR "
                   "records), a .tsv documents file, or a collection (default: --collection's documents the model "
                   "does not have)")
    p.add_argument("--out", required=True, metavar="DIR", help="the model folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace the output folder if it exists")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                   help=f"the training settings: its pseudo-query stage's learning rate and batch size "
                        f"(default: {DEFAULT_PRESET})")
    p.add_argument("--add-epochs", type=ranged(float, 0, low_open=True), default=DEFAULT_ADD_EPOCHS,
                   help=f"epochs over the new and replayed examples (default: {DEFAULT_ADD_EPOCHS:g})")
    p.add_argument("--add-learning-rate", type=ranged(float, 0, low_open=True), default=None,
                   help="(default: the preset's pseudo-query stage's)")
    p.add_argument("--add-batch-size", type=POSITIVE, default=None, help="(default: the preset's pseudo-query stage's)")
    p.add_argument("--replay", type=ranged(float, 0), default=DEFAULT_REPLAY, help="old documents' examples mixed in, "
                   f"per new example (default: {DEFAULT_REPLAY:g})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ddro", action=argparse.BooleanOptionalAction, default=False, help="then a DDRO round on the "
                   "training queries that judge new documents and the new documents' pseudo-queries, selected on "
                   "every held-out query (default: off)")
    add_config_options(p, DDROConfig, "DDRO round", skip=RUN_SKIPS)
    p.set_defaults(func=cmd_add_docs, writes_folder=True)

    p = sub.add_parser("remove-docs", help="take documents out of a trained model's index (no training)")
    p.add_argument("--model", required=True, metavar="DIR", help="a model folder written by training")
    p.add_argument("--documents", required=True, metavar="SRC", help="the documents to remove: a .txt file of "
                   "document ids (one a line), a .jsonl or .tsv documents file, or a collection")
    p.add_argument("--out", required=True, metavar="DIR", help="the model folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace the output folder if it exists")
    p.set_defaults(func=cmd_remove_docs, writes_folder=True)

    p = sub.add_parser("search", help="rank documents for queries with a trained model (TREC run)")
    _add_collection_options(p, required=False)
    p.add_argument("--queries-file", default=None, metavar="FILE", help="queries instead of a collection's: "
                   "'qid<TAB>text' lines, or a released test set (JSON lines; local or hf://datasets/...)")
    p.add_argument("--model", required=True, metavar="DIR", help="a model folder written by training; with "
                   "--docids a released checkpoint (hub id such as kiyam/ddro-msmarco-pq, or its folder)")
    p.add_argument("--docids", default=None, metavar="TABLE.txt", help="a released docid table "
                   "('[docid]<TAB>id,id,...'; local or hf://datasets/kiyam/ddro-docids/...) for --model")
    p.add_argument("--out", required=True, metavar="RUN.trec")
    p.add_argument("--queries", default="test", choices=["test", "train", "all"],
                   help="which queries of --collection (default: test)")
    p.add_argument("--k", type=POSITIVE, default=DEFAULT_K, help=f"documents per query (default: {DEFAULT_K})")
    p.add_argument("--beams", type=POSITIVE, default=DEFAULT_BEAMS, help=f"beam width (default: {DEFAULT_BEAMS})")
    p.add_argument("--beams-at-least-k", action=argparse.BooleanOptionalAction, default=True,
                   help="widen the beam to k when it is narrower (default: on)")
    p.add_argument("--batch-size", type=POSITIVE, default=DEFAULT_SEARCH_BATCH,
                   help=f"queries per beam search call (default: {DEFAULT_SEARCH_BATCH})")
    p.add_argument("--length-penalty", type=ranged(float), default=0.0,
                   help="rank by log p(docid) / length**L (default 0: the raw sequence log-probability)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    _add_dtype_option(p)
    _add_precision_option(p, "(default: the one the model was trained with, as it records); with --dtype "
                          "fp32 (the default) --precision bf16 scores as training under bf16 did")
    p.add_argument("--tag", default="ddro", help="run tag in the TREC file")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("eval", help="evaluate a TREC run on a collection's queries (prints JSON)")
    _add_collection_options(p, required=False)
    p.add_argument("--qrels", default=None, metavar="FILE", help="judgments instead of a collection's: TREC qrels "
                   "or a released test set (doc ids compared without brackets, lower-cased)")
    p.add_argument("--queries-file", default=None, metavar="FILE",
                   help="with --qrels: evaluate only these queries (default: every judged query)")
    p.add_argument("--run", required=True, metavar="RUN.trec")
    p.add_argument("--queries", default="test", choices=["test", "train", "all"])
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("serve", help="an HTTP search service and search page over a trained model")
    p.add_argument("--model", required=True, metavar="DIR", help="a model folder written by training")
    p.add_argument("--collection", required=True, metavar="SRC", help="the collection the model was trained on "
                   "(its documents are shown with the results)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only; 0.0.0.0 for all)")
    p.add_argument("--port", type=ranged(int, 0, 65535), default=8000)
    p.add_argument("--beams", type=POSITIVE, default=20, help="beam width of a request that names none (widened to its "
                   "hits; default: 20)")
    p.add_argument("--batch-window-ms", type=ranged(float, 0), default=5.0, help="how long a search waits for others to batch "
                   "with (default: 5; 0 with --max-batch 1 searches one request at a time)")
    p.add_argument("--max-batch", type=POSITIVE, default=32, help="queries in one beam search at most (default: 32)")
    p.add_argument("--max-waiting", type=NON_NEGATIVE, default=256, help="requests waiting at most; more are answered 429")
    p.add_argument("--max-hits", type=POSITIVE, default=100)
    p.add_argument("--max-beams", type=POSITIVE, default=100)
    p.add_argument("--max-query-chars", type=POSITIVE, default=1000)
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    _add_dtype_option(p)
    _add_precision_option(p, "(default: the one the model was trained with, as it records)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("run", help="the main job: docids, BM25, SFT, search and evaluation in one go")
    _add_collection_options(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--scheme", default=None, choices=SCHEMES,
                   help="docid scheme (default: the preset's for the collection's size; cpu: pq 4 x 256 up to "
                        "3,000 documents, rq 4 x 256 above)")
    p.add_argument("--k", type=POSITIVE, default=DEFAULT_K, help=f"documents per query (default: {DEFAULT_K})")
    p.add_argument("--beams", type=POSITIVE, default=None, help="beam width (default: the preset's)")
    p.add_argument("--beams-at-least-k", action=argparse.BooleanOptionalAction, default=True,
                   help="widen the beam to --k when it is narrower; the beam used is in metrics.json (default: on)")
    p.add_argument("--ddro", action=argparse.BooleanOptionalAction, default=True,
                   help="run the DDRO phase after SFT (default: on)")
    p.add_argument("--sft-save-steps", type=ranged(float, 0, low_open=True), default=SFTConfig.save_steps,
                   help="SFT steps between two checkpoints, or below 1 the fraction of a stage's steps; "
                        f"--save-steps is the DDRO phase's (default: {SFTConfig.save_steps:g})")
    _add_dtype_option(p)
    _add_model_options(p)
    add_config_options(p, DDROConfig, "DDRO phase", skip=RUN_SKIPS)
    p.set_defaults(func=cmd_run, writes_folder=True)
    return parser


# The last words of a resumable command (one with --resume) stopped by a signal.
_RESUMABLE = "; finished phases and the last checkpoint are kept: --resume continues"


def _terminate(signum, frame):
    raise Terminated


def main(argv=None) -> int:
    from ddro.manifest import set_command

    show_on_stderr()  # the library's progress and warnings
    parser = build_parser()
    args = parser.parse_args(argv)
    set_command(sys.argv[1:] if argv is None else list(argv))
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        # A scheduler's SIGTERM (SLURM's time limit, `kill`) ends a command as Ctrl-C does: temporary
        # outputs removed, the lock released, one line. (`ddro serve` installs uvicorn's own handler.)
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with _one_voice(), _one_writer(args), _lenient(args):
            status = args.func(args)
            distributed.barrier()  # no process leaves while another still needs it
            return status
    except OptionError as exc:
        print(f"ddro: error: {flag_of(parser, exc.field) or exc.field} {exc.problem}", file=sys.stderr)
        return 2
    except DdroError as exc:
        print(f"ddro: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ddro: interrupted (SIGINT){_RESUMABLE if hasattr(args, 'resume') else ''}",
              file=sys.stderr)
        return 130
    except Terminated:
        print(f"ddro: terminated (SIGTERM){_RESUMABLE if hasattr(args, 'resume') else ''}",
              file=sys.stderr)
        return 143
    finally:
        distributed.finish()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _lenient(args):
    """Under `--lenient`, the readers skip bad lines; what they skipped is said on stderr at the
    end, whether the command then succeeds or not (by rank 0 only, under a launcher)."""
    from ddro.leniency import skipping

    with skipping(getattr(args, "lenient", False)) as skips:
        try:
            yield
        finally:
            if skips is not None and distributed.is_main():
                for line in skips.summary():
                    print(f"ddro: {line}", file=sys.stderr)


def _one_writer(args):
    """The output folder's lock, for the commands that write one (`writes_folder`)."""
    if not getattr(args, "writes_folder", False):
        return contextlib.nullcontext()
    from ddro.outputs import output_lock

    return output_lock(args.out)


@contextlib.contextmanager
def _one_voice():
    """Under `torchrun` / `accelerate launch`: open the process group, and keep the summary lines
    of the processes other than rank 0 off stdout (their errors and warnings still reach stderr)."""
    distributed.start()
    if distributed.is_main():
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


if __name__ == "__main__":
    sys.exit(main())
