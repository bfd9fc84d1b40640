"""Stage ``unpack``: stream trn.json (zip, .json.gz or plain JSON lines) into Parquet, in bounded memory.

Reads ``data.raw``; writes one Parquet file with ``uid``, ``title``, ``content`` (and the target lists if
``unpack.keep_targets``). Blocks of ``unpack.block_bytes`` are parsed by pyarrow's multi-threaded JSON
reader (the fast path); a block it rejects is re-parsed line by line so each bad line is skipped,
counted by kind and quoted with its line number, and the good lines around it are kept.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from .files import PARQUET_OPTIONS, DataError, atomic_path, progress

TEXT_FIELDS = ("uid", "title", "content")
TARGET_FIELDS = {"target_ind": pa.list_(pa.int64()), "target_rel": pa.list_(pa.float64())}
MEMBER_NAMES = ("trn.json.gz", "trn.json")
# pyarrow parses a block's sub-blocks of this size on separate threads: one sub-block per block would
# parse on one core (measured: 5.8 s vs 2.5 s for 2.25M records on 2 cores).
PARSE_CHUNK = 1 << 20



def schema(keep_targets: bool) -> pa.Schema:
    fields = [pa.field(name, pa.string()) for name in TEXT_FIELDS]
    if keep_targets:
        fields += [pa.field(name, typ) for name, typ in TARGET_FIELDS.items()]
    return pa.schema(fields)


@dataclass
class LineErrors:
    """Bad lines, counted by kind, the first few quoted with their line numbers."""

    max_examples: int
    counts: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def add(self, kind: str, line_no: int, detail: str) -> None:
        self.counts[kind] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(f"line {line_no}: {kind}: {detail}")


def open_raw(path: str | os.PathLike) -> tuple[BinaryIO, str]:
    """Open any of the accepted input forms as a stream of JSON-lines bytes; return it and its name."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected the zip, a trn.json.gz or a trn.json")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    if zipfile.is_zipfile(path):
        zf = zipfile.ZipFile(path)
        members = [m for m in zf.namelist() if Path(m).name in MEMBER_NAMES]
        if not members:
            raise DataError(f"{path}: zip has no trn.json.gz or trn.json (it has: {', '.join(zf.namelist()[:8])})")
        member = min(members, key=lambda m: MEMBER_NAMES.index(Path(m).name))  # prefer the .gz
        stream, name = zf.open(member), f"{path}:{member}"
        if member.endswith(".gz"):
            from isal import igzip

            stream = igzip.GzipFile(fileobj=stream, mode="rb")
        return stream, name
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        # isal inflates 2-3x faster than zlib; the threaded reader inflates in a second thread.
        from isal import igzip_threaded

        return igzip_threaded.open(path, "rb", threads=1), str(path)
    return open(path, "rb"), str(path)


def blocks(stream: BinaryIO, block_bytes: int, name: str) -> Iterator[tuple[int, int, bytes]]:
    """Yield (first line number, number of lines, bytes) blocks that end on a line boundary."""
    line_no, tail = 1, b""
    while True:
        try:
            chunk = stream.read(block_bytes)
        except (EOFError, OSError, zipfile.BadZipFile) as err:
            raise DataError(f"{name}: corrupt or truncated compressed data near line {line_no} ({err})") from None
        if not chunk:
            break
        buf = tail + chunk
        cut = buf.rfind(b"\n") + 1
        if cut == 0:  # one line longer than a block: keep reading
            tail = buf
            continue
        block, tail = buf[:cut], buf[cut:]
        n_lines = block.count(b"\n")
        yield line_no, n_lines, block
        line_no += n_lines
    if tail.strip():
        yield line_no, 1, tail + b"\n"


def _fast(block: bytes, n_lines: int, sch: pa.Schema) -> pa.Table | None:
    """pyarrow's reader; None when the block holds anything but clean, complete records."""
    try:
        table = pajson.read_json(
            io.BytesIO(block),
            read_options=pajson.ReadOptions(block_size=PARSE_CHUNK),
            parse_options=pajson.ParseOptions(explicit_schema=sch, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None
    if table.num_rows != n_lines or any(table.column(f).null_count for f in TEXT_FIELDS):
        return None  # blank lines or missing fields: let the line-by-line path name them
    return table


def _slow(block: bytes, first_line: int, sch: pa.Schema, errors: LineErrors) -> pa.Table:
    """Parse line by line: skip and record each bad line, keep the good ones."""
    rows: dict[str, list] = {f: [] for f in sch.names}
    for offset, raw in enumerate(block.split(b"\n")[:-1]):
        line_no = first_line + offset
        if not raw.strip():
            errors.add("blank_line", line_no, "empty line")
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            errors.add("invalid_utf8", line_no, str(err))
            continue
        except ValueError as err:
            errors.add("malformed_json", line_no, str(err))
            continue
        if not isinstance(obj, dict):
            errors.add("not_an_object", line_no, f"a JSON {type(obj).__name__}, not an object")
            continue
        missing = [k for k in TEXT_FIELDS if k not in obj or obj[k] is None]
        if missing:
            errors.add("missing_field", line_no, f"no {missing[0]!r}")
            continue
        wrong = [k for k in TEXT_FIELDS if not isinstance(obj[k], str)]
        if wrong:
            errors.add("wrong_type", line_no, f"{wrong[0]!r} is a {type(obj[wrong[0]]).__name__}, not a string")
            continue
        for name in sch.names:
            rows[name].append(obj.get(name))
    try:
        return pa.Table.from_pydict(rows, schema=sch)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Target lists of the wrong shape: rare, so find the culprits one row at a time.
        good = {f: [] for f in sch.names}
        for i in range(len(rows["uid"])):
            row = {f: [rows[f][i]] for f in sch.names}
            try:
                pa.Table.from_pydict(row, schema=sch)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
                errors.add("wrong_type", first_line, f"target lists of uid {rows['uid'][i]!r}: {err}")
                continue
            for f in sch.names:
                good[f].append(rows[f][i])
        return pa.Table.from_pydict(good, schema=sch)


def unpack(raw: str | os.PathLike, out: str | os.PathLike, *, keep_targets: bool, block_bytes: int,
           max_reported_errors: int) -> dict:
    """Convert ``raw`` to Parquet at ``out`` (atomically); return counts for metrics."""
    sch = schema(keep_targets)
    errors = LineErrors(max_reported_errors)
    stream, name = open_raw(raw)
    written = lines = 0
    with stream, atomic_path(out) as tmp, progress(desc="unpack") as bar:
        with pq.ParquetWriter(tmp, sch, **PARQUET_OPTIONS) as writer:
            for first_line, n_lines, block in blocks(stream, block_bytes, name):
                table = _fast(block, n_lines, sch)
                if table is None:
                    table = _slow(block, first_line, sch, errors)
                lines += n_lines
                bar.update(n_lines)
                if table.num_rows:
                    writer.write_table(table)
                    written += table.num_rows
        if lines == 0:
            raise DataError(f"{name}: no lines in the file")
        if written == 0:
            raise DataError(f"{name}: none of its {lines} lines is a usable record ({dict(errors.counts)})")
    return {
        "source": name,
        "lines": lines,
        "records": written,
        "skipped": sum(errors.counts.values()),
        "skipped_by_kind": dict(sorted(errors.counts.items())),
        "skipped_examples": errors.examples,
    }
