"""Stage ``sample``: a seeded, length-stratified sample of the catalog, split train/validation/test by product.

Reads the ``clean`` Parquet file; writes ``train``, ``validation`` and ``test`` Parquet files and counts, and
``reading``: ``sample.reading_products`` more products that only teach the model to read (prodqa.template).
Stratifying by description length makes short and long descriptions both appear however skewed the
catalog is. Splitting assigns whole products to a split: rows that share a normalised title, share their
description (a series' one blurb under several titles: 116 of 1,001 real records), or have near-identical
descriptions (``sample.near_duplicate``: "Mog in the Dark" / "Mog on Fox Night") land in the same split, so no
"unseen" test product's description was trained on under another title.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .clean import title_key
from .params import Sample

SPLITS = ("train", "validation", "test")
READING = "reading"  # products outside the sample that only teach reading: their description is in a prompt, never an answer


def stratified_indices(lengths: np.ndarray, p: Sample, rng: np.random.Generator) -> np.ndarray:
    """Draw ``p.n_products`` row indices, as evenly as possible across the length buckets."""
    bucket = np.digitize(lengths, p.length_buckets)
    groups = [rng.permutation(np.flatnonzero(bucket == b)) for b in range(len(p.length_buckets) + 1)]
    groups = [g for g in groups if len(g)]
    size = min(p.n_products, len(lengths))
    chosen: list[np.ndarray] = []
    # Water-filling: every bucket gets an equal share; what a small bucket cannot fill goes to the rest.
    remaining = size
    for i, g in enumerate(sorted(groups, key=len)):
        take = min(len(g), remaining // (len(groups) - i))
        chosen.append(g[:take])
        remaining -= take
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)


SHINGLE_WORDS = 3  # a description's word shingles: its runs of three words, lower-cased
LSH_THRESHOLD = 0.3  # MinHash LSH candidates well below the Jaccard asked for, so few near pairs slip past it
NUM_PERM = 128


def shingles(text: str) -> set[str]:
    """The word shingles of ``text`` (a text shorter than a shingle is one shingle of all its words)."""
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i:i + SHINGLE_WORDS]) for i in range(max(len(words) - SHINGLE_WORDS + 1, 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicates(contents: list[str], threshold: float) -> list[tuple[int, int]]:
    """Pairs (i < j) of rows whose descriptions' word shingles have a Jaccard similarity of at least ``threshold``:
    candidates from datasketch's MinHash LSH, each confirmed on the shingles themselves."""
    from datasketch import MinHash, MinHashLSH

    sets = [shingles(c) for c in contents]
    hashes = MinHash.bulk([[s.encode() for s in x] for x in sets], num_perm=NUM_PERM, seed=1)
    lsh = MinHashLSH(threshold=min(LSH_THRESHOLD, threshold), num_perm=NUM_PERM)
    pairs = []
    for i, h in enumerate(hashes):
        pairs += [(j, i) for j in lsh.query(h) if jaccard(sets[i], sets[j]) >= threshold]
        lsh.insert(i, h)
    return sorted(pairs)


def product_groups(titles: list[str], contents: list[str], near_duplicate: float = 1.0) -> np.ndarray:
    """A group number per row: rows linked by a shared title key, a shared description, or (below 1.0) by
    descriptions at least ``near_duplicate`` alike (``near_duplicates``) are one group."""
    parent = list(range(len(titles)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for column in (titles, contents):
        first: dict[str, int] = {}
        for i, value in enumerate(column):
            parent[root(i)] = root(first.setdefault(value, i))
    if near_duplicate < 1.0:
        for i, j in near_duplicates(contents, near_duplicate):
            parent[root(j)] = root(i)
    return np.array([root(i) for i in range(len(titles))], dtype=np.int64)


def split_by_product(groups: np.ndarray, p: Sample, rng: np.random.Generator) -> np.ndarray:
    """Assign each row a split index (0 train, 1 validation, 2 test); rows of one group (``product_groups``)
    share a split."""
    unique, inverse = np.unique(groups, return_inverse=True)
    order = rng.permutation(len(unique))
    n_test = round(len(unique) * p.test_frac)
    n_val = round(len(unique) * p.val_frac)
    split_of_key = np.zeros(len(unique), dtype=np.int8)
    split_of_key[order[:n_test]] = 2
    split_of_key[order[n_test:n_test + n_val]] = 1
    return split_of_key[inverse]


def reading_indices(table: pa.Table, idx: np.ndarray, p: Sample, rng: np.random.Generator) -> np.ndarray:
    """Up to ``p.reading_products`` rows outside the sample (``idx``; drawn from twice as many), none in a product group (``product_groups``)
    with a sampled row: a reading example never shows a test product's description, nor a near-copy of it."""
    if not p.reading_products:
        return np.array([], dtype=np.int64)
    rest = rng.permutation(np.setdiff1d(np.arange(table.num_rows), idx))[:2 * p.reading_products]
    both = np.concatenate([idx, rest])
    rows = table.take(pa.array(both, pa.int64()))
    groups = product_groups(title_key(rows["title"]).to_pylist(), rows["content"].to_pylist(), p.near_duplicate)
    apart = ~np.isin(groups[len(idx):], groups[:len(idx)])
    return np.sort(rest[apart][:p.reading_products])


def sample(table: pa.Table, p: Sample) -> tuple[dict[str, pa.Table], dict]:
    """Sample and split ``table``; the same table and params give the same rows in the same order."""
    rng = np.random.default_rng(p.seed)
    lengths = pc.utf8_length(table["content"]).to_numpy(zero_copy_only=False)
    idx = stratified_indices(lengths, p, rng)
    picked = table.take(pa.array(idx))
    contents = picked["content"].to_pylist()
    groups = product_groups(title_key(picked["title"]).to_pylist(), contents, p.near_duplicate)
    split = split_by_product(groups, p, rng)
    parts = {name: picked.filter(pa.array(split == i)) for i, name in enumerate(SPLITS)}
    parts[READING] = table.take(pa.array(reading_indices(table, idx, p, rng), pa.int64()))
    shared = pc.is_in(picked["content"], pa.array([c for c, n in Counter(contents).items() if n > 1], pa.string()))
    _, group_of, group_sizes = np.unique(groups, return_inverse=True, return_counts=True)
    edges = [0, *p.length_buckets]
    buckets = np.digitize(lengths[idx], p.length_buckets)
    metrics = {
        "catalog_rows": table.num_rows,
        "sampled": int(len(idx)),
        **{f"{name}_rows": t.num_rows for name, t in parts.items()},
        "shared_description_rows": int(pc.sum(shared).as_py() or 0),  # kept together in one split
        "grouped_rows": int((group_sizes[group_of] > 1).sum()),  # rows sharing a split with another product
        "reading_rows": parts[READING].num_rows,
        "by_length_bucket": {
            (f">={edges[b]}" if b == len(edges) - 1 else f"{edges[b]}-{edges[b + 1] - 1}"): int((buckets == b).sum())
            for b in range(len(edges))
        },
    }
    return parts, metrics
