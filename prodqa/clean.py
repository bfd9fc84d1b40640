"""Stage ``clean``: decode, strip and filter the unpacked products, batch by batch.

Reads the ``unpack`` Parquet file; writes the cleaned catalog (same columns) and per-rule counts.
Text rules run as vectorised pyarrow (RE2) kernels on whole batches; only strings that contain an
HTML entity go through Python's ``html.unescape``. Duplicate detection keeps 64-bit hashes of what it
has seen, so memory stays bounded by the batch size, not the file size.
"""

from __future__ import annotations

import html
import os
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .files import atomic_path, progress
from .params import Clean

TAG = r"<[^<>]{0,200}>"
URL = r"(?i)\b(?:https?://|ftp://|www\.)[^\s<>\"]+"
EMAIL = r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b"
ENTITY = r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]{1,31});?"
# RE2's \s is ASCII-only; entities decode to no-break and other Unicode spaces, so name them.
SPACE = r"[\s\x{00A0}\x{1680}\x{2000}-\x{200B}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}]+"

# (rule name, metric kind) in the order they apply; a product is counted by the first rule that drops it.
TEXT_RULES = ("html_unescape", "strip_html_tags", "remove_urls", "remove_emails", "remove_boilerplate",
              "normalize_whitespace")
DROP_RULES = ("title_equals_content", "short_title", "too_short", "too_long", "duplicate", "repeated_title")


def _unescape(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """html.unescape on the strings that hold an entity; twice, for double-escaped ``&amp;#8217;``."""
    values = col.to_pylist()
    has = pc.match_substring_regex(col, ENTITY).to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(has):
        text = html.unescape(values[i])
        values[i] = html.unescape(text) if "&" in text else text
    return pa.array(values, pa.string())


def _replace(col, pattern: str, with_: str = " "):
    return pc.replace_substring_regex(col, pattern=pattern, replacement=with_)


def clean_text(col, p: Clean, *, is_title: bool, counts: Counter, prefix: str):
    """Apply the enabled text rules to one column, counting the rows each rule changed."""
    steps = [
        ("html_unescape", p.html_unescape, _unescape),
        ("strip_html_tags", p.strip_html_tags, lambda c: _replace(c, TAG)),
        ("remove_urls", p.remove_urls and not is_title, lambda c: _replace(c, URL)),
        ("remove_emails", p.remove_emails and not is_title, lambda c: _replace(c, EMAIL)),
        ("remove_boilerplate", p.remove_boilerplate and not is_title and bool(p.boilerplate_patterns),
         lambda c: _replace(c, "(?:" + "|".join(p.boilerplate_patterns) + ")", "")),
        ("normalize_whitespace", p.normalize_whitespace,
         lambda c: pc.utf8_trim_whitespace(_replace(c, SPACE))),
    ]
    for name, enabled, fn in steps:
        if enabled:
            new = fn(col)
            counts[f"{prefix}_changed_{name}"] += pc.sum(pc.not_equal(col, new)).as_py() or 0
            col = new
    return col


def title_key(titles) -> pa.Array:
    """The normalised title that identifies a product: case-folded, punctuation-free, single-spaced."""
    key = pc.utf8_lower(titles)
    key = pc.replace_substring_regex(key, pattern=r"[^\pL\pN]+", replacement=" ")
    return pc.utf8_trim_whitespace(key)


def _hashes(*cols) -> np.ndarray:
    frame = pd.DataFrame({i: c.to_pandas() for i, c in enumerate(cols)})
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def _first_seen(hashes: np.ndarray, seen: set[int]) -> np.ndarray:
    keep = np.zeros(len(hashes), dtype=bool)
    for i, h in enumerate(hashes.tolist()):
        if h not in seen:
            seen.add(h)
            keep[i] = True
    return keep


class Cleaner:
    """Cleans batches in order; holds the hashes of products already kept (for de-duplication)."""

    def __init__(self, p: Clean):
        self.p = p
        self.counts: Counter = Counter({f"dropped_{r}": 0 for r in DROP_RULES})
        self.seen_pairs: set[int] = set()
        self.seen_titles: set[int] = set()

    def __call__(self, batch: pa.RecordBatch) -> pa.Table:
        p, counts = self.p, self.counts
        counts["rows_in"] += batch.num_rows
        table = pa.Table.from_batches([batch])
        title = clean_text(table["title"], p, is_title=True, counts=counts, prefix="title")
        content = clean_text(table["content"], p, is_title=False, counts=counts, prefix="content")
        table = table.set_column(table.schema.get_field_index("title"), "title", title)
        table = table.set_column(table.schema.get_field_index("content"), "content", content)

        n_content = pc.utf8_length(content)
        key = title_key(title)
        rules = []
        if p.drop_title_equals_content:
            rules.append(("title_equals_content", pc.equal(key, title_key(content))))
        rules += [
            ("short_title", pc.less(pc.utf8_length(title), p.min_title_chars)),
            ("too_short", pc.less(n_content, p.min_chars)),
            ("too_long", pc.greater(n_content, p.max_chars)),
        ]
        keep = np.ones(table.num_rows, dtype=bool)
        for name, drop in rules:
            drop = drop.to_numpy(zero_copy_only=False) & keep
            counts[f"dropped_{name}"] += int(drop.sum())
            keep &= ~drop
        # De-duplication last, so a product dropped for another reason never shadows a good twin.
        for name, enabled, seen, cols in [
            ("duplicate", p.drop_duplicates, self.seen_pairs, (title, content)),
            ("repeated_title", p.drop_repeated_titles, self.seen_titles, (key,)),
        ]:
            if enabled:
                idx = np.flatnonzero(keep)
                first = _first_seen(_hashes(*(pc.take(c, idx) for c in cols)), seen)
                counts[f"dropped_{name}"] += int((~first).sum())
                keep[idx[~first]] = False
        out = table.filter(pa.array(keep))
        counts["rows_out"] += out.num_rows
        return out


def clean(src: str | os.PathLike, out: str | os.PathLike, p: Clean) -> dict:
    """Clean the Parquet file ``src`` into ``out`` (atomically); return the per-rule counts."""
    reader = pq.ParquetFile(src)
    cleaner = Cleaner(p)
    with atomic_path(out) as tmp, progress(reader.metadata.num_rows, desc="clean") as bar:
        with pq.ParquetWriter(tmp, reader.schema_arrow, compression="snappy") as writer:
            for batch in reader.iter_batches(batch_size=p.batch_rows):
                writer.write_table(cleaner(batch))
                bar.update(batch.num_rows)
    return dict(sorted(cleaner.counts.items()))
