"""Output folders and files that appear complete or not at all."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from ddro.errors import DdroError


def check_output_dir(out: Path, overwrite: bool, resume: bool | None = None) -> None:
    """Fail early, before any work, when `out` exists and may not be replaced; `resume` (True or
    False) for a command that can continue an interrupted folder in place."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DdroError(f"{out}: exists and is not a folder")
    check_parents(out)
    if out.is_dir() and any(out.iterdir()) and not (overwrite or resume):
        hint = "--overwrite to replace it" if resume is None else "--resume to continue it or --overwrite"
        raise DdroError(f"{out}: folder exists and is not empty (pass {hint})")


def check_parents(out: Path) -> None:
    """`out` can be made: its nearest existing ancestor is a folder."""
    existing = next((parent for parent in Path(out).parents if parent.exists()), None)
    if existing is not None and not existing.is_dir():
        raise DdroError(f"{out}: cannot be made: {existing} is a file, not a folder")


@contextmanager
def atomic_files(folder: str | Path):
    """Yield a temporary folder inside `folder`; on success each file written into it replaces its
    namesake in `folder` by one rename, so a reader sees the old file or the whole new one.

    For folders continued in place (`--resume`), which `atomic_output_dir` would replace whole.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        for path in sorted(tmp.iterdir()):
            os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` through `atomic_files`."""
    path = Path(path)
    with atomic_files(path.parent) as tmp:
        (tmp / path.name).write_text(text)


@contextmanager
def atomic_output_dir(out: str | Path, overwrite: bool = False):
    """Yield a temporary sibling folder to write into; on success it replaces `out` in one rename.

    On any failure the temporary folder is removed, so `out` is either the old folder, absent, or
    the complete new one, never half-written.
    """
    out = Path(out)
    check_output_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        _put_in_place(tmp, out)
    except BaseException:
        # A complete folder under a temporary name would look like a result: it goes.
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _put_in_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder `tmp` to `out`, replacing an old `out`, which comes back if the
    rename fails."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)  # the old folder back where it was
        raise
    shutil.rmtree(old, ignore_errors=True)


def work_dir(out: str | Path) -> Path:
    """Where a resumable command (`ddro run`, `ddro train sft`, `ddro train ddro`) writes until it
    finishes: `.NAME.partial` beside `out`. Its name is fixed (the lock keeps it to one writer), so
    that `--resume` finds an interrupted command's checkpoints there."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def check_resumable_output_dir(out: str | Path, overwrite: bool, resume: bool) -> None:
    """`check_output_dir` for a resumable command, which also refuses to start over an interrupted
    command's work folder without `--resume` or `--overwrite`: fail early, before any work."""
    check_output_dir(out, overwrite, resume)
    work = work_dir(out)
    if work.exists() and not (resume or overwrite):
        raise DdroError(f"{out}: an interrupted command left {work} (pass --resume to continue it, or "
                        "--overwrite to start again)")


@contextmanager
def resumable_output_dir(out: str | Path, overwrite: bool = False, resume: bool = False):
    """Yield the folder a resumable command writes into (`work_dir`); when the block ends without
    error it becomes `out` in one rename, so `out` is the old folder, absent, or complete.

    - Interrupted (Ctrl-C, SIGTERM, a crash, `kill -9`), the work folder stays with its checkpoints,
      and `--resume` continues it; without `--resume` or `--overwrite` a command refuses to start
      over it. A user error (`DdroError`) in a fresh start removes it: its inputs were wrong.
    - `--resume` of a finished `out` continues it in the work folder (to retrain a phase with other
      settings, say) and puts it back when done, or when stopped.
    - `--overwrite` starts a fresh work folder; the old `out` stays until the new one is complete.
    """
    from ddro.distributed import barrier, is_main

    out = Path(out)
    work = work_dir(out)
    check_resumable_output_dir(out, overwrite, resume)
    fresh = not (resume and (work.is_dir() or out.is_dir()))
    finished = not fresh and not work.is_dir()  # a finished folder continued: it comes back when done
    barrier()  # every process looked before rank 0 moves anything
    if is_main():
        if fresh:
            shutil.rmtree(work, ignore_errors=True)
        elif finished:
            os.replace(out, work)
        work.mkdir(parents=True, exist_ok=True)
    barrier()
    try:
        yield work
    except BaseException as exc:
        if is_main() and fresh and isinstance(exc, DdroError):
            shutil.rmtree(work, ignore_errors=True)
        elif is_main() and finished:
            # Back where it was, with any new checkpoints for the next --resume: its phases are
            # replaced whole (result files last), so it stays a consistent finished folder.
            os.replace(work, out)
        raise
    barrier()
    if is_main():
        _put_in_place(work, out)


def lock_path(out: str | Path) -> Path:
    """The lock of an output folder: a file beside it (the folder itself may be replaced whole)."""
    out = Path(out)
    return out.parent / f".{out.name}.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@contextmanager
def output_lock(out: str | Path):
    """Hold `out` for one writer: a second command into it fails at once with one line naming the
    holder. The lock records the pid and host; a lock left by a process of this host that is gone
    (killed, crashed) is taken over. Under a launcher only rank 0 locks."""
    import json
    import socket

    from ddro.distributed import is_main

    if not is_main():
        yield
        return
    path = lock_path(out)
    check_parents(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    record = json.dumps({"pid": os.getpid(), "host": host})
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text() or "{}")
            except (OSError, ValueError):
                holder = {}
            if holder.get("host") == host and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
                path.unlink(missing_ok=True)  # its process is gone: the lock is stale
                continue
            raise DdroError(f"{out}: in use by another ddro command (pid {holder.get('pid', '?')} on "
                            f"{holder.get('host', '?')}; lock {path}); wait for it to end, or remove the lock if "
                            "that process is gone") from None
        with os.fdopen(fd, "w") as fh:
            fh.write(record)
        break
    else:
        raise DdroError(f"{path}: could not take the lock")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


CHECKSUMS = "checksums.json"


def file_sha256(path) -> str:
    """The SHA-256 of a file's bytes, read a megabyte at a time."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: str | Path, parts: list[str] | None = None) -> None:
    """Record the SHA-256 of every file under `folder` (or under its `parts`, files or folders
    relative to it) in `folder/checksums.json`, written last."""
    import json

    folder = Path(folder)
    roots = [folder / part for part in parts] if parts is not None else [folder]
    paths = [path for root in roots for path in ([root] if root.is_file() else sorted(root.rglob("*")))]
    files = {str(p.relative_to(folder)): file_sha256(p) for p in paths if p.is_file() and p.name != CHECKSUMS}
    (folder / CHECKSUMS).write_text(json.dumps({"format": "ddro-checksums/1", "sha256": files}, indent=1) + "\n")


def verify_checksums(folder: str | Path) -> None:
    """Every file `checksums.json` lists is there with the bytes it had: else one line naming the
    first that is missing or changed. Files added since are not checked; a folder without the
    record (written before ddro kept one) is not checked."""
    import json

    folder = Path(folder)
    record = folder / CHECKSUMS
    if not record.is_file():
        return
    try:
        files = json.loads(record.read_text())["sha256"]
    except (ValueError, KeyError, TypeError):
        raise DdroError(f"{record}: unreadable (not the checksums ddro writes)") from None
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise DdroError(f"{path}: missing from {folder} (listed in {CHECKSUMS}); the folder is incomplete")
        if file_sha256(path) != expected:
            raise DdroError(f"{path}: changed since {folder} was written (its checksum differs); "
                            "the folder is damaged or was edited")
