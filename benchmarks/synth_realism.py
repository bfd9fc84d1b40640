"""Benchmark: is the generated default data as hard as the real file?

    python -m benchmarks.synth_realism [--raw ../shared/real_dev/trn_dev.jsonl] [--records 3000]

Runs the pipeline's own `unpack` and `clean` on the real development records and on generated ones
(prodqa.synth, the `synth` params' seed), then compares the cleaned descriptions:

- **pair ROUGE-L**: ROUGE-L between the descriptions of two random products. It is what a model scores
  that writes a typical catalog description instead of this product's (a guess about an unseen product),
  so generated data with a higher figure flatters every unseen score.
- **names a title word**: share of descriptions containing a word (4+ letters) of their title.
- kept by clean, median and 90th-percentile length in characters.

Records the result in benchmarks/results/synth_realism.json. The real records are a development set:
never a dependency of the tests or of `make repro`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import tempfile
from pathlib import Path

from benchmarks import record

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RAW = ROOT.parent / "shared" / "real_dev" / "trn_dev.jsonl"


def cleaned(raw: Path, work: Path, params: str) -> tuple[list[tuple[str, str]], dict]:
    """The (title, description) pairs that survive the pipeline's unpack and clean, and clean's counts."""
    import pyarrow.parquet as pq

    from stages import clean, unpack

    work.mkdir(parents=True, exist_ok=True)
    P = ["--params", params]
    unpack.main([*P, "--raw", str(raw), "--out", str(work / "unpack.parquet"), "--metrics", str(work / "unpack.json")])
    clean.main([*P, "--src", str(work / "unpack.parquet"), "--out", str(work / "clean.parquet"), "--metrics", str(work / "clean.json")])
    table = pq.read_table(work / "clean.parquet", columns=["title", "content"])
    return list(zip(table["title"].to_pylist(), table["content"].to_pylist())), json.loads((work / "clean.json").read_text())


def measure(rows: list[tuple[str, str]], pairs: int, seed: int) -> dict:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rng = random.Random(seed)
    pair_scores = [scorer.score(*(c for _, c in rng.sample(rows, 2)))["rougeL"].fmeasure for _ in range(pairs)]
    named = [bool({w for w in re.findall(r"[a-z]+", t.lower()) if len(w) > 3} & set(re.findall(r"[a-z]+", c.lower())))
             for t, c in rows]
    lengths = sorted(len(c) for _, c in rows)
    return {"products": len(rows), "pair_rougeL_mean": round(statistics.mean(pair_scores), 4),
            "pair_rougeL_p90": round(sorted(pair_scores)[int(0.9 * pairs)], 4),
            "names_a_title_word": round(sum(named) / len(named), 3),
            "chars_median": lengths[len(lengths) // 2], "chars_p90": lengths[int(0.9 * len(lengths))]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", default=str(DEFAULT_RAW))
    ap.add_argument("--records", type=int, default=3000, help="generated records to compare with")
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "synth_realism.json"))
    args = ap.parse_args(argv)

    from prodqa import params, synth

    work = Path(tempfile.mkdtemp(prefix="prodqa-synth-"))
    seed = params.load(params.Synth, args.params).seed
    synth.write(str(work / "synth.json.gz"), args.records, seed)
    result = {}
    for name, raw in (("real", Path(args.raw)), ("generated", work / "synth.json.gz")):
        rows, counts = cleaned(raw, work / name, args.params)
        result[name] = {**measure(rows, args.pairs, seed=0), "kept_by_clean": counts["rows_out"],
                        "records_in": counts["rows_in"]}
    result["generated"]["seed"], result["generated"]["records"] = seed, args.records
    record(result, args.result)


if __name__ == "__main__":
    main()
