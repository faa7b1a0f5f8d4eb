"""An output folder's manifest (`manifest.json`): what made it, and from which inputs.

`ddro docids`, `ddro train sft`, `ddro train ddro` and `ddro run` write one into each folder they
make (a run's model and docid folders too). It records the command line, the settings and seed,
the package versions, ddro's git commit when it runs from a checkout, and the SHA-256 of every
input: each file of the collection (an `irds:` id is recorded as given), the docid table and
the parent model (the digest of their `checksums.json`, which covers every file of theirs), and
any pseudo-queries or negatives file.

`check_unchanged` compares a folder's recorded inputs with the ones a command is given now: a
stage that resumes a folder, or starts from a table or model made from other inputs (a collection
edited since, say), stops with one line naming the input and the file that differs.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

from ddro.errors import DdroError
from ddro.outputs import CHECKSUMS, file_sha256

MANIFEST = "manifest.json"
FORMAT = "ddro-manifest/1"


def collection_digests(source: str) -> dict[str, str]:
    """`{file: sha256}` of a collection folder's files (hidden ones aside), or `{"id": source}` for
    an `irds:` id, whose files ir_datasets keeps."""
    folder = Path(source)
    if str(source).startswith("irds:") or not folder.is_dir():
        return {"id": str(source)}
    files = (path for path in sorted(folder.rglob("*"))
             if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts))
    return {str(path.relative_to(folder)): file_sha256(path) for path in files}


def folder_digest(folder: str | Path) -> dict[str, str]:
    """A docid table's or model's identity: the digest of its `checksums.json` (which lists every
    file's digest), or of nothing for a folder written before ddro kept checksums."""
    record = Path(folder) / CHECKSUMS
    return {CHECKSUMS: file_sha256(record)} if record.is_file() else {}


def file_digests(path: str | Path | None) -> dict[str, str]:
    """`{name: sha256}` of one input file (nothing for None or a remote file)."""
    if path is None or not Path(path).is_file():
        return {}
    return {Path(path).name: file_sha256(path)}


def inputs_from(collection: str, parent_name: str, parent: str | Path, what: str,
                files: dict[str, str | Path | None]) -> dict[str, dict]:
    """The inputs of a stage that starts from `parent` (a docid table, a model): the collection's
    files, which `parent` must have been made from (else one line: `check_unchanged`, `what` naming
    it), `parent` itself by its checksums (`folder_digest`) under `parent_name`, and `files`."""
    inputs = {"collection": collection_digests(collection)}
    check_unchanged(parent, inputs, what)
    return inputs | {parent_name: folder_digest(parent)} | {name: file_digests(path) for name, path in files.items()}


@functools.cache
def versions() -> dict:
    """The versions of Python and of the packages a result depends on."""
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for package in ("ddro", "torch", "transformers", "sentence-transformers", "ir_measures", "bm25s", "PyStemmer",
                    "numpy"):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            out[package] = None
    return out


@functools.cache
def ddro_commit() -> dict:
    """ddro's git commit (and whether the checkout has uncommitted changes) when it runs from one:
    that of the code this process loaded, so it is looked up once."""
    where = Path(__file__).resolve().parent

    def git(*args) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None}
    return {"commit": commit, "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no"))}


def write_manifest(folder: str | Path, inputs: dict[str, dict], settings: dict | None = None,
                   seed: int | None = None) -> None:
    """`folder/manifest.json` for the command this process runs."""
    record = {"format": FORMAT, "command": ["ddro", *sys.argv[1:]] if _COMMAND is None else _COMMAND,
              "seed": seed, "settings": settings, "versions": versions(), "ddro_source": ddro_commit(),
              "inputs": inputs}
    (Path(folder) / MANIFEST).write_text(json.dumps(record, indent=1, default=str) + "\n")


def read_inputs(folder: str | Path) -> dict[str, dict] | None:
    """The inputs a folder's manifest records (None without a manifest: written before ddro kept one)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        inputs = json.loads(path.read_text())["inputs"]
    except (ValueError, KeyError, TypeError):
        raise DdroError(f"{path}: unreadable (not the manifest ddro writes)") from None
    if not isinstance(inputs, dict):
        raise DdroError(f"{path}: unreadable (not the manifest ddro writes)")
    return inputs


def check_unchanged(folder: str | Path, inputs: dict[str, dict], what: str) -> None:
    """Refuse `folder` when an input its manifest records under one of `inputs`' names has another
    digest now (a file changed, gone or new); `what` says what the folder is to the user."""
    recorded = read_inputs(folder)
    if recorded is None:
        return
    for name, now in inputs.items():
        then = recorded.get(name)
        if then is None or then == now:
            continue
        changed = sorted(key for key in set(then) | set(now) if then.get(key) != now.get(key))
        first = changed[0]
        state = "differs" if first in now and first in then else "is new" if first in now else "is gone"
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        raise DdroError(f"{folder}: {what} was made from another {name} than the one given now: {first} {state}"
                        f"{more} (pass --overwrite to start again, or give the inputs it was made from)")


def check_and_record(folder: Path, inputs: dict[str, dict], resume: bool, settings: dict, seed: int) -> None:
    """Before a resumable command works in `folder`: with `resume`, the folder must have been
    started from the same inputs; then its manifest records them (rank 0 writes it)."""
    from ddro.distributed import is_main

    if resume:
        check_unchanged(folder, inputs, "the folder to resume")
    if is_main():
        write_manifest(folder, inputs, settings, seed)


_COMMAND: list[str] | None = None


def set_command(argv: list[str]) -> None:
    """The command line manifests record (`ddro.cli.main` sets it: its `argv` may not be `sys.argv`)."""
    global _COMMAND
    _COMMAND = ["ddro", *argv]
