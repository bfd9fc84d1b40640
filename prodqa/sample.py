"""Stage ``sample``: a seeded, length-stratified sample of the catalog, split train/validation/test by product.

Reads the ``clean`` Parquet file; writes ``train``, ``validation`` and ``test`` Parquet files and counts.
Stratifying by description length makes short and long descriptions both appear however skewed the
catalog is. Splitting assigns whole normalised titles to a split, so no product leaks across splits
even when the catalog still holds repeated titles.
"""

from __future__ import annotations

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


def split_by_title(keys: list[str], p: Sample, rng: np.random.Generator) -> np.ndarray:
    """Assign each row a split index (0 train, 1 validation, 2 test); rows sharing a key share a split."""
    unique, inverse = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
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
    split = split_by_title(title_key(picked["title"]).to_pylist(), p, rng)
    parts = {name: picked.filter(pa.array(split == i)) for i, name in enumerate(SPLITS)}
    edges = [0, *p.length_buckets]
    buckets = np.digitize(lengths[idx], p.length_buckets)
    metrics = {
        "catalog_rows": table.num_rows,
        "sampled": int(len(idx)),
        **{f"{name}_rows": t.num_rows for name, t in parts.items()},
        "by_length_bucket": {
            (f">={edges[b]}" if b == len(edges) - 1 else f"{edges[b]}-{edges[b + 1] - 1}"): int((buckets == b).sum())
            for b in range(len(edges))
        },
    }
    return parts, metrics
