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
# JSON text deflates ~5-20x; a member claiming more is corrupt or a decompression bomb, refused unread.
MAX_COMPRESSION_RATIO = 200
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")



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
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic in ZIP_MAGIC:
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile as err:  # cut short: the central directory at its end is gone
            raise DataError(f"{path}: truncated or corrupt zip ({err})") from None
        members = [m for m in zf.namelist() if Path(m).name in MEMBER_NAMES]
        if not members:
            raise DataError(f"{path}: zip has no trn.json.gz or trn.json (it has: {', '.join(zf.namelist()[:8])})")
        member = min(members, key=lambda m: MEMBER_NAMES.index(Path(m).name))  # prefer the .gz
        info = zf.getinfo(member)
        if info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise DataError(f"{path}:{member}: claims {info.file_size} bytes from {info.compress_size} compressed "
                            f"(more than {MAX_COMPRESSION_RATIO}x); refused as corrupt or a decompression bomb")
        # zipfile checks the member's CRC-32 when it reaches its end: a corrupt member raises BadZipFile.
        stream, name = zf.open(member), f"{path}:{member}"
        if member.endswith(".gz"):
            from isal import igzip

            stream = igzip.GzipFile(fileobj=stream, mode="rb")
        return stream, name
    if magic[:2] == b"\x1f\x8b":
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
        except (EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
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
    # pyarrow's reader segfaults on a block whose first value is `null` (pyarrow 26): it only gets blocks whose
    # every line opens an object; the rest go line by line.
    if block.count(b"\n{") + block.startswith(b"{") != n_lines:
        return None
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
    try:
        # pyarrow's reader passes invalid UTF-8 inside strings through unchecked, and decodes escaped lone
        # surrogates (\\ud800) to invalid UTF-8: either makes the block go line by line.
        table.validate(full=True)
    except pa.ArrowInvalid:
        return None
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
        except RecursionError:
            errors.add("malformed_json", line_no, "nested too deeply to parse")
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
        bad = next((k for k in TEXT_FIELDS if not _encodable(obj[k])), None)
        if bad:
            errors.add("invalid_unicode", line_no, f"{bad!r} holds a lone surrogate escape (\\ud800-\\udfff)")
            continue
        for name in sch.names:
            rows[name].append(obj.get(name))
    try:
        return pa.Table.from_pydict(rows, schema=sch)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, RecursionError):
        # Target lists of the wrong shape: rare, so find the culprits one row at a time.
        good = {f: [] for f in sch.names}
        for i in range(len(rows["uid"])):
            row = {f: [rows[f][i]] for f in sch.names}
            try:
                pa.Table.from_pydict(row, schema=sch)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, RecursionError) as err:
                errors.add("wrong_type", first_line, f"target lists of uid {rows['uid'][i]!r}: {err}")
                continue
            for f in sch.names:
                good[f].append(rows[f][i])
        return pa.Table.from_pydict(good, schema=sch)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
