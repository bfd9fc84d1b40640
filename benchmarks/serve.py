"""Benchmark the web app's latency (issue 13) on this machine: time to the fine-tuned model's first words
after a question, as the page measures it (``Answerer.ask``: lookup, prompt, llama.cpp prefill, first
token), over ``--questions`` questions about products of the sample, with the pipeline's GGUF models.
Catalog lookup at the real catalog's size is benchmarks/lookup.py.

    python -m benchmarks.serve
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from benchmarks import record

ROOT = Path(__file__).resolve().parents[1]


def percentiles(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {"p50_ms": round(1000 * statistics.median(xs), 2), "p95_ms": round(1000 * xs[int(0.95 * (len(xs) - 1))], 2),
            "max_ms": round(1000 * xs[-1], 2), "n": len(xs)}


def first_token(args) -> dict:
    import pyarrow.parquet as pq

    from prodqa import params
    from prodqa.serve import Answerer

    answerer = Answerer(params.load(params.Template, args.params), params.load(params.Generate, args.params))
    if answerer.missing:
        raise SystemExit(f"models missing ({answerer.missing}); run make repro first")
    titles = pq.read_table(ROOT / "data/sample/train.parquet", columns=["title"])["title"].to_pylist()
    titles += pq.read_table(ROOT / "data/sample/test.parquet", columns=["title"])["title"].to_pylist()
    firsts = {p: [] for p in ("tuned", "grounded", "base")}
    totals = []
    for title in titles[: args.questions]:
        *_, (_, answers) = answerer.ask(f"What is {title}?")
        for panel in firsts:
            firsts[panel].append(answers[panel].first_token_s)
        totals.append(max(a.total_s for a in answers.values()))
    return {"questions": len(totals), "threads": len(os.sched_getaffinity(0)),
            **{f"first_words_{p}": percentiles(v) for p, v in firsts.items()},
            "all_three_done": percentiles(totals)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "serve.json"))
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    record({"first_token": first_token(args)}, args.result)


if __name__ == "__main__":
    main()
