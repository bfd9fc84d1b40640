"""Stage ``sample``: a seeded, length-stratified sample of the catalog, split train/validation/test by product.

Reads the ``clean`` Parquet file; writes ``train``, ``validation`` and ``test`` Parquet files and counts.
Stratifying by description length makes short and long descriptions both appear however skewed the
catalog is. Splitting assigns whole products to a split: rows that share a normalised title, or share their
description (a series' one blurb under several titles: 116 of 1,001 real records), land in the same split, so
no "unseen" test product's description was trained on under another title.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .clean import title_key
from .params import Sample

SPLITS = ("train", "validation", "test")


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


def product_groups(titles: list[str], contents: list[str]) -> np.ndarray:
    """A group number per row: rows linked by a shared title key or a shared description are one group."""
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
    return np.array([root(i) for i in range(len(titles))], dtype=np.int64)


def split_by_product(title_keys: list[str], contents: list[str], p: Sample, rng: np.random.Generator) -> np.ndarray:
    """Assign each row a split index (0 train, 1 validation, 2 test); rows of one product (``product_groups``)
    share a split."""
    groups = product_groups(title_keys, contents)
    unique, inverse = np.unique(groups, return_inverse=True)
    order = rng.permutation(len(unique))
    n_test = round(len(unique) * p.test_frac)
    n_val = round(len(unique) * p.val_frac)
    split_of_key = np.zeros(len(unique), dtype=np.int8)
    split_of_key[order[:n_test]] = 2
    split_of_key[order[n_test:n_test + n_val]] = 1
    return split_of_key[inverse]


def sample(table: pa.Table, p: Sample) -> tuple[dict[str, pa.Table], dict]:
    """Sample and split ``table``; the same table and params give the same rows in the same order."""
    rng = np.random.default_rng(p.seed)
    lengths = pc.utf8_length(table["content"]).to_numpy(zero_copy_only=False)
    idx = stratified_indices(lengths, p, rng)
    picked = table.take(pa.array(idx))
    contents = picked["content"].to_pylist()
    split = split_by_product(title_key(picked["title"]).to_pylist(), contents, p, rng)
    parts = {name: picked.filter(pa.array(split == i)) for i, name in enumerate(SPLITS)}
    shared = pc.is_in(picked["content"], pa.array([c for c, n in Counter(contents).items() if n > 1], pa.string()))
    edges = [0, *p.length_buckets]
    buckets = np.digitize(lengths[idx], p.length_buckets)
    metrics = {
        "catalog_rows": table.num_rows,
        "sampled": int(len(idx)),
        **{f"{name}_rows": t.num_rows for name, t in parts.items()},
        "shared_description_rows": int(pc.sum(shared).as_py() or 0),  # kept together in one split
        "by_length_bucket": {
            (f">={edges[b]}" if b == len(edges) - 1 else f"{edges[b]}-{edges[b + 1] - 1}"): int((buckets == b).sum())
            for b in range(len(edges))
        },
    }
    return parts, metrics
