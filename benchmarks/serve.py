"""Benchmark the web app's two latency targets (issue 13) on this machine:

1. Product lookup on a catalog of ``--titles`` titles (default 1.2M, the real file's count of products
   with a description): index build time, and per-lookup latency of ``find`` (the grounded answer's
   product) and ``suggest`` (typing), p50 / p95 / max over questions about real titles.
   The catalog is the 500 real titles of ``--real`` (when given) among synthetic titles whose words follow
   a Zipf law over a 300k-word vocabulary, as product titles' words do.
2. Time to the fine-tuned model's first words after a question, as the page measures it
   (``Answerer.ask``: lookup, prompt, llama.cpp prefill, first token), over ``--questions`` questions about
   products of the sample, with the pipeline's GGUF models.

    python -m benchmarks.serve [--real ../shared/real_dev/trn_dev.jsonl]
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def percentiles(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {"p50_ms": round(1000 * statistics.median(xs), 2), "p95_ms": round(1000 * xs[int(0.95 * (len(xs) - 1))], 2),
            "max_ms": round(1000 * xs[-1], 2), "n": len(xs)}


def synthetic_titles(n: int, seed: int = 0) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    vocab = np.array(["".join(chr(97 + c) for c in rng.integers(0, 26, rng.integers(3, 10))) for _ in range(300_000)])
    lengths = rng.integers(4, 13, n)
    words = vocab[np.minimum(rng.zipf(1.2, lengths.sum()) - 1, len(vocab) - 1)]
    cuts = np.concatenate([[0], np.cumsum(lengths)])
    return [" ".join(words[cuts[i]:cuts[i + 1]]).title() for i in range(n)]


def lookup(args) -> dict:
    import pyarrow as pa

    from prodqa.catalog import TitleIndex

    real = [html.unescape(json.loads(line)["title"]) for line in open(args.real)] if args.real else []
    titles = synthetic_titles(args.titles - len(real)) + real
    random.Random(0).shuffle(titles)
    start = time.perf_counter()
    index = TitleIndex(pa.array(titles), pa.array([""] * len(titles)))
    build_s = time.perf_counter() - start
    asked = real[:200] or titles[:200]
    rng = random.Random(1)
    questions = []  # (title asked about, counted in exact_title_found, question)
    for t in asked:
        half = " ".join(t.split()[: max(2, len(t.split()) // 2)])
        questions += [(t, True, f"What is {t}?"), (t, False, f"tell me about the {half}"),
                      (t, False, f"{t.lower()} - details please")]
    finds, found, exact = [], 0, 0
    for title, whole, q in questions:
        start = time.perf_counter()
        match, _ = index.find(q)
        finds.append(time.perf_counter() - start)
        found += bool(match)
        exact += whole and match is not None and match.title == title
    typed = [t[: rng.randint(4, max(5, len(t)))] for t in asked]
    suggests = []
    for q in typed:
        start = time.perf_counter()
        index.suggest(q)
        suggests.append(time.perf_counter() - start)
    return {"titles": len(titles), "real_titles": len(real), "build_s": round(build_s, 1),
            "find": percentiles(finds), "suggest": percentiles(suggests),
            "matched_share": round(found / len(questions), 3), "exact_title_found": f"{exact}/{len(asked)}"}


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
    ap.add_argument("--titles", type=int, default=1_200_000)
    ap.add_argument("--real", help="real trn.json lines whose titles are put into the catalog and asked about")
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "serve.json"))
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    cpu = sorted(set(w for line in open("/proc/cpuinfo") if line.startswith("flags") for w in line.split()
                     if w.startswith(("amx", "avx512"))))
    result = {"cpu_flags": cpu, "lookup": lookup(args), "first_token": first_token(args)}
    Path(args.result).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
