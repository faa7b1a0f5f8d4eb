"""The `ddro` command line.

Every subcommand reads and writes plain files, so a user can start or stop at any stage. A user
error (bad path, malformed line, unknown option value) ends with one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from ddro.errors import DdroError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other user error
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_dataclass_options(parser: argparse.ArgumentParser, cls, skip=()) -> None:
    """One `--option-name` per dataclass field, typed and defaulted from the field."""
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name.startswith("_"):
            continue
        kind = {"int": int, "float": float, "str": str, "str | None": str, "bool": None}[str(f.type)]
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if kind is None:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=f.default, help=f"{help_text} (default: {f.default})".strip())


def _add_collection_options(parser) -> None:
    parser.add_argument("--collection", required=True, metavar="SRC",
                        help="collection folder (BEIR, MS MARCO TSV, Cranfield/NPL/LISA) or irds:<id>")
    parser.add_argument("--test-fraction", type=float, default=None,
                        help="fraction of judged queries used for testing when the collection has no split "
                             "of its own (default 1/3; 1.0 = every query is a test query)")


def cmd_docids(args) -> int:
    from ddro.collections import load_collection
    from ddro.docids import DocidConfig, build_docids
    from ddro.outputs import atomic_output_dir, check_output_dir

    out = Path(args.out)
    check_output_dir(out, args.overwrite)
    config = DocidConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DocidConfig)})
    collection = load_collection(args.collection, args.test_fraction)
    start = time.perf_counter()
    table = build_docids(collection, config)
    seconds = time.perf_counter() - start
    stats = table.stats() | {"scheme": config.scheme, "build_seconds": round(seconds, 3),
                             "options": table.options, "collection": collection.describe()}
    with atomic_output_dir(out, args.overwrite) as tmp:
        table.save(tmp)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    print(f"docids: {collection.name} scheme={config.scheme}: {stats['documents']} documents, "
          f"{stats['unique_docids']} unique docids, {stats['collisions']} collisions ({config.collisions}), "
          f"length <= {stats['docid_length']}, vocab {stats['vocab_size']}, {seconds:.1f} s -> {out}")
    return 0


def cmd_inspect(args) -> int:
    from ddro.collections import load_collection

    collection = load_collection(args.collection, args.test_fraction)
    print(json.dumps(collection.describe(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ddro import __version__
    from ddro.docids import SCHEMES, DocidConfig

    parser = _Parser(prog="ddro", description="Generative document retrieval with DDRO.")
    parser.add_argument("--version", action="version", version=f"ddro {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("docids", help="build a docid table for a collection")
    _add_collection_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for the table")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    add_dataclass_options(p, DocidConfig, skip=("scheme",))
    p.add_argument("--scheme", required=True, choices=SCHEMES, help="docid scheme")
    p.set_defaults(func=cmd_docids)

    p = sub.add_parser("inspect", help="print a collection's counts, split and reader notes as JSON")
    _add_collection_options(p)
    p.set_defaults(func=cmd_inspect)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DdroError as exc:
        print(f"ddro: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ddro: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
