"""Benchmark: does any unseen description all but repeat a trained one? (issue 56: near-duplicates in one split)

    python -m benchmarks.split [--raw ../shared/real_dev/trn_dev.jsonl] [--draws 100 450]

Runs unpack, clean and sample on the real records at each draw (``sample.n_products``), with near-duplicates
grouped (``sample.near_duplicate``, the default) and with identical descriptions only (1.0, as before), and
measures every validation/test description against every trained one on the same word shingles
(``prodqa.sample.shingles``), exactly, pair by pair. Records per draw and way: the largest such Jaccard, the
pairs at or above the threshold, and how many near-duplicate pairs and groups the draw holds, in
benchmarks/results/split.json. Target: no validation/test description within Jaccard 0.5 of a trained one.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RAW = ROOT.parent / "shared" / "real_dev" / "trn_dev.jsonl"


def leaks(parts: dict, threshold: float) -> dict:
    """The closest trained description to each validation/test one, by word-shingle Jaccard."""
    from prodqa.sample import jaccard, shingles

    trained = [shingles(c) for c in parts["train"]["content"].to_pylist()]
    held = [(name, t["title"][i].as_py(), shingles(c)) for name in ("validation", "test")
            for t in [parts[name]] for i, c in enumerate(t["content"].to_pylist())]
    closest = [(max((jaccard(s, x) for x in trained), default=0.0), name, title) for name, title, s in held]
    return {"max_jaccard": round(max((c[0] for c in closest), default=0.0), 3),
            "held_out_within_threshold": sum(c[0] >= threshold for c in closest),
            "examples": [{"split": n, "title": t, "jaccard": round(j, 3)} for j, n, t in sorted(closest, reverse=True)[:5]]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", default=str(DEFAULT_RAW))
    ap.add_argument("--draws", type=int, nargs="+", default=None, help="sample.n_products (default: params.yaml's, 450)")
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "split.json"))
    args = ap.parse_args(argv)

    import numpy as np
    import pyarrow.parquet as pq

    from benchmarks import record
    from prodqa import clean, params, sample, unpack

    doc = params.read_yaml(ROOT / "params.yaml")
    p = params.parse("sample", doc["sample"])
    with tempfile.TemporaryDirectory() as tmp:
        u = params.parse("unpack", doc["unpack"])
        unpack.unpack(args.raw, Path(tmp) / "unpack.parquet", keep_targets=u.keep_targets, block_bytes=u.block_bytes,
                      max_reported_errors=u.max_reported_errors)
        clean.clean(Path(tmp) / "unpack.parquet", Path(tmp) / "clean.parquet", params.parse("clean", doc["clean"]))
        table = pq.read_table(Path(tmp) / "clean.parquet")
    draws = {}
    for n in args.draws or [p.n_products, 450]:
        n = min(n, table.num_rows)
        for near in (p.near_duplicate, 1.0):
            drawn = p.model_copy(update={"n_products": n, "near_duplicate": near})
            parts, metrics = sample.sample(table, drawn)
            contents = [c for t in parts.values() for c in t["content"].to_pylist()]
            pairs = [(i, j) for i, j in sample.near_duplicates(contents, p.near_duplicate) if contents[i] != contents[j]]
            linked = sample.product_groups([str(i) for i in range(len(contents))], contents, p.near_duplicate)
            _, sizes = np.unique(linked, return_counts=True)
            draws[f"{n}/near_duplicate={near}"] = {
                "rows": metrics["sampled"], "grouped_rows": metrics["grouped_rows"],
                "near_duplicate_pairs": len(pairs), "description_groups": int((sizes > 1).sum()),
                **leaks(parts, p.near_duplicate)}
    record({"benchmark": "split", "raw": Path(args.raw).name, "threshold": p.near_duplicate,
            "shingle_words": sample.SHINGLE_WORDS, "draws": draws}, args.result)


if __name__ == "__main__":
    main()
