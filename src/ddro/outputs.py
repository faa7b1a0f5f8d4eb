"""Output folders that appear complete or not at all."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from ddro.errors import DdroError


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Fail early, before any work, when `out` exists and may not be replaced."""
    if out.exists() and not out.is_dir():
        raise DdroError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DdroError(f"{out}: folder exists and is not empty (pass --overwrite to replace it)")


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
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
