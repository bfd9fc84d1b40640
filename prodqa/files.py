"""File helpers shared by every stage: atomic outputs, JSON metrics, progress bars, one-line errors.

Every stage writes its outputs through :func:`atomic_path`, so a stage killed midway leaves either the
previous output or nothing, never a half-written file that looks finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

# Parquet writer settings of the data stages: text columns are near-unique, so dictionary encoding only
# costs time, and LZ4 pages decode faster than snappy's here.
PARQUET_OPTIONS = {"compression": "lz4", "use_dictionary": False}


class DataError(Exception):
    """An input that cannot be used as a whole; the message names the file and the problem."""


class SetupError(Exception):
    """The environment lacks something the command needs (a package, a working build); says what installs it."""


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; rename it onto ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # The temporary lives in the same folder so the rename is atomic (same file system).
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if is_dir and final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as pretty, key-sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows) -> None:
    """Write one JSON object per line (UTF-8, not escaped), atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def progress(total: int | None = None, unit: str = "rec", desc: str = "") -> Any:
    """A tqdm bar on a terminal; silent in CI logs and pipes (where a bar only adds noise)."""
    from tqdm import tqdm

    quiet = not sys.stderr.isatty() or bool(os.environ.get("CI"))
    return tqdm(total=total, unit=unit, unit_scale=True, desc=desc, disable=quiet, smoothing=0.1)
