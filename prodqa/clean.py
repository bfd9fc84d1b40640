"""Stage ``clean``: decode, strip and filter the unpacked products, batch by batch.

Reads the ``unpack`` Parquet file; writes the cleaned catalog (same columns) and per-rule counts.
Text rules run as vectorised pyarrow (RE2) kernels on whole batches; only strings that contain an
HTML entity go through Python's ``html.unescape``. Duplicate detection keeps 64-bit hashes of what it
has seen, so memory stays bounded by the batch size, not the file size.
"""

from __future__ import annotations

import html
import os
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .files import PARQUET_OPTIONS, DataError, atomic_path, progress
from .params import Clean

# Each rule is (detect, rewrite): a cheap RE2 match finds the rows that need it, and only those rows
# are rewritten. Most rows need no rule, and a match is ~10x cheaper than a replace over all text.
TAG = r"<[^<>]{0,200}>"
URL = r"(?i)\b(?:https?://|ftp://|www\.)[^\s<>\"]+"
URL_HINT = r"(?:[hH][tT][tT][pP][sS]?|[fF][tT][pP])://|[wW][wW][wW]\."
EMAIL = r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b"
EMAIL_HINT = r"@[a-zA-Z0-9-]+\."
ENTITY = r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]{1,31});?"
# RE2's \s is ASCII-only; entities decode to no-break and other Unicode spaces, so name them.
_U = r"\x{00A0}\x{1680}\x{2000}-\x{200B}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}"
SPACE = rf"[\s{_U}]+"
SPACE_HINT = rf"[\s{_U}]{{2,}}|[\t\n\r\f\v{_U}]|^[\s{_U}]|[\s{_U}]$"

# In the order they apply; a product is counted by the first rule that drops it.
DROP_RULES = ("title_equals_content", "short_title", "too_short", "too_long", "duplicate", "repeated_title")


def _unescape(col: pa.Array) -> pa.Array:
    """html.unescape each string, once: ``&amp;amp;`` is the text ``&amp;``, as written (the real records hold
    no double-escaped entities: none of the 500 development lines has ``&amp;`` before another entity)."""
    return pa.array([html.unescape(text) for text in col.to_pylist()], pa.string())


def _replace(pattern: str, with_: str = " "):
    return lambda col: pc.replace_substring_regex(col, pattern=pattern, replacement=with_)


def _normalize_space(col):
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(col, pattern=SPACE, replacement=" "))


def text_rules(p: Clean, *, is_title: bool) -> list[tuple[str, str, object]]:
    """The enabled (name, detect pattern, rewrite function) rules for a title or description column."""
    boiler = "(?:" + "|".join(p.boilerplate_patterns) + ")"
    rules = [
        ("html_unescape", p.html_unescape, ENTITY, _unescape),
        ("strip_html_tags", p.strip_html_tags, TAG, _replace(TAG)),
        ("remove_urls", p.remove_urls and not is_title, URL_HINT, _replace(URL)),
        ("remove_emails", p.remove_emails and not is_title, EMAIL_HINT, _replace(EMAIL)),
        ("remove_boilerplate", p.remove_boilerplate and not is_title and bool(p.boilerplate_patterns),
         boiler, _replace(boiler, "")),
        ("normalize_whitespace", p.normalize_whitespace, SPACE_HINT, _normalize_space),
    ]
    return [(name, detect, fn) for name, enabled, detect, fn in rules if enabled]


def clean_text(col, rules, *, counts: Counter, prefix: str):
    """Apply rules to one column, counting the rows each rule changed."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    for name, _, _ in rules:
        counts[f"{prefix}_changed_{name}"] += 0
    if not rules:
        return col
    # One pass of all detectors together finds the ~20% of rows that need any rule; the rules then run on
    # those rows only. A row no rule matched cannot be changed by a rule, so nothing is missed.
    needs = pc.match_substring_regex(col, "|".join(f"(?:{detect})" for _, detect, _ in rules))
    if not needs.true_count:
        return col
    sub = col.filter(needs)
    for name, detect, fn in rules:
        hit = pc.match_substring_regex(sub, detect)
        if hit.true_count:
            before = sub.filter(hit)
            after = fn(before)
            counts[f"{prefix}_changed_{name}"] += pc.sum(pc.not_equal(before, after)).as_py() or 0
            sub = pc.replace_with_mask(sub, hit, after)
    return pc.replace_with_mask(col, needs, sub)


def title_key(titles) -> pa.Array:
    """The normalised title that identifies a product: case-folded, punctuation-free, single-spaced."""
    import polars as pl  # its Unicode regex is ~2x faster than RE2's here

    key = pl.from_arrow(titles).str.to_lowercase().str.replace_all(r"[^\p{L}\p{N}]+", " ").str.strip_chars(" ")
    return key.to_arrow().cast(pa.string())


def _equals_title(key, title, content) -> np.ndarray:
    """Rows whose description is their title once normalised (checked only where lengths allow it)."""
    maybe = pc.less_equal(pc.utf8_length(content), pc.add(pc.multiply(pc.utf8_length(title), 2), 8))
    out = np.zeros(len(key), dtype=bool)
    idx = np.flatnonzero(maybe.to_numpy(zero_copy_only=False))
    if len(idx):
        out[idx] = pc.equal(pc.take(key, idx), title_key(pc.take(content, idx))).to_numpy(zero_copy_only=False)
    return out


def _hashes(*cols) -> np.ndarray:
    """64-bit hash per row of the given columns (polars hashes Arrow memory in Rust, ~20x pandas here)."""
    import polars as pl

    frame = pl.DataFrame({str(i): pl.from_arrow(c) for i, c in enumerate(cols)})
    return frame.hash_rows(seed=0).to_numpy()


def _first_seen(hashes: np.ndarray, seen: set[int], alive: np.ndarray) -> np.ndarray:
    """True where a hash was not seen before (in earlier batches or earlier in this one); records the
    hashes of the ``alive`` first occurrences as seen. Set algebra and numpy only: no per-row Python."""
    _, first_idx = np.unique(hashes, return_index=True)
    first = np.zeros(len(hashes), dtype=bool)
    first[first_idx] = True
    old = seen.intersection(hashes[first_idx].tolist())
    if old:
        first &= ~np.isin(hashes, np.fromiter(old, dtype=hashes.dtype, count=len(old)))
    seen.update(hashes[first & alive].tolist())
    return first


class Cleaner:
    """Cleans batches in order; holds the hashes of products already kept (for de-duplication).

    ``prepare`` (text rules, filters, hashing) is independent per batch and runs in worker threads;
    ``dedupe`` needs the batches in file order and runs in the caller's thread.
    """

    def __init__(self, p: Clean):
        self.p = p
        self.counts: Counter = Counter({f"dropped_{r}": 0 for r in DROP_RULES})
        self.seen = {"duplicate": set(), "repeated_title": set()}
        self.title_rules = text_rules(p, is_title=True)
        self.content_rules = text_rules(p, is_title=False)

    def prepare(self, batch: pa.RecordBatch) -> tuple[pa.Table, np.ndarray, dict, Counter]:
        p, counts = self.p, Counter(rows_in=batch.num_rows)
        table = pa.Table.from_batches([batch])
        title = clean_text(table["title"], self.title_rules, counts=counts, prefix="title")
        content = clean_text(table["content"], self.content_rules, counts=counts, prefix="content")
        table = table.set_column(table.schema.get_field_index("title"), "title", title)
        table = table.set_column(table.schema.get_field_index("content"), "content", content)

        n_content = pc.utf8_length(content)
        key = title_key(title)
        drops = []
        if p.drop_title_equals_content:
            drops.append(("title_equals_content", _equals_title(key, title, content)))
        drops += [
            ("short_title", pc.less(pc.utf8_length(title), p.min_title_chars).to_numpy(zero_copy_only=False)),
            ("too_short", pc.less(n_content, p.min_chars).to_numpy(zero_copy_only=False)),
            ("too_long", pc.greater(n_content, p.max_chars).to_numpy(zero_copy_only=False)),
        ]
        keep = np.ones(table.num_rows, dtype=bool)
        for name, drop in drops:
            drop = drop & keep
            counts[f"dropped_{name}"] += int(drop.sum())
            keep &= ~drop
        idx = np.flatnonzero(keep)
        hashes = {}
        if p.drop_duplicates:
            hashes["duplicate"] = _hashes(pc.take(title, idx), pc.take(content, idx))
        if p.drop_repeated_titles:
            hashes["repeated_title"] = _hashes(pc.take(key, idx))
        return table, keep, hashes, counts

    def dedupe(self, table: pa.Table, keep: np.ndarray, hashes: dict, counts: Counter) -> pa.Table:
        # De-duplication comes after the other rules, so a dropped product never shadows a good twin.
        idx = np.flatnonzero(keep)
        alive = np.ones(len(idx), dtype=bool)
        for name, h in hashes.items():  # "duplicate" first: exact twins are counted as such
            first = _first_seen(h, self.seen[name], alive)
            counts[f"dropped_{name}"] += int((alive & ~first).sum())
            alive &= first
        keep[idx[~alive]] = False
        out = table.filter(pa.array(keep))
        counts["rows_out"] += out.num_rows
        self.counts.update(counts)
        return out

    def __call__(self, batch: pa.RecordBatch) -> pa.Table:
        return self.dedupe(*self.prepare(batch))


def open_checked(src: str | os.PathLike) -> pq.ParquetFile:
    """The Parquet file ``src``, if it has the text columns ``clean`` needs; DataError naming the problem if not.

    Stages after ``unpack`` do not trust their input either: a string column holding invalid UTF-8 makes
    pyarrow's string kernels crash, so every batch is validated before any kernel touches it.
    """
    from .unpack import TEXT_FIELDS

    try:
        reader = pq.ParquetFile(src)
    except (OSError, pa.ArrowInvalid) as err:
        raise DataError(f"{src}: not a readable Parquet file ({err})") from None
    schema = reader.schema_arrow
    for name in TEXT_FIELDS:
        if name not in schema.names:
            raise DataError(f"{src}: no column {name!r} (it has: {', '.join(schema.names)})")
        if not (pa.types.is_string(schema.field(name).type) or pa.types.is_large_string(schema.field(name).type)):
            raise DataError(f"{src}: column {name!r} is {schema.field(name).type}, not a string")
    return reader


def _checked_batches(reader: pq.ParquetFile, rows: int, src) -> Iterator[pa.RecordBatch]:
    start = 0
    for batch in reader.iter_batches(batch_size=rows):
        try:
            batch.validate(full=True)
        except pa.ArrowInvalid as err:
            raise DataError(f"{src}: invalid data in rows {start}-{start + batch.num_rows - 1} ({err})") from None
        yield batch
        start += batch.num_rows


def clean(src: str | os.PathLike, out: str | os.PathLike, p: Clean, workers: int = 2) -> dict:
    """Clean the Parquet file ``src`` into ``out`` (atomically); return the per-rule counts."""
    reader = open_checked(src)
    cleaner = Cleaner(p)
    # pyarrow kernels release the GIL, so batches are prepared on all cores; at most `workers` + 1
    # batches are in flight, which bounds memory whatever the file size.
    with atomic_path(out) as tmp, progress(reader.metadata.num_rows, desc="clean") as bar, \
            ThreadPoolExecutor(workers) as pool:
        with pq.ParquetWriter(tmp, reader.schema_arrow, **PARQUET_OPTIONS) as writer:
            pending: deque = deque()
            for batch in _checked_batches(reader, p.batch_rows, src):
                pending.append(pool.submit(cleaner.prepare, batch))
                if len(pending) > workers:
                    _write_next(pending, cleaner, writer, bar)
            while pending:
                _write_next(pending, cleaner, writer, bar)
    return dict(sorted(cleaner.counts.items()))


def _write_next(pending: deque, cleaner: Cleaner, writer: pq.ParquetWriter, bar) -> None:
    table, keep, hashes, counts = pending.popleft().result()
    writer.write_table(cleaner.dedupe(table, keep, hashes, counts))
    bar.update(counts["rows_in"])
