"""Benchmark: does an answer's confidence tell what the model recalled from what it guessed? And the threshold.

    python -m benchmarks.confidence --run DIR   (DIR: a recall run kept with `benchmarks.recall --keep DIR`)

Asks the run's merged model, as the evaluate stage does (prodqa.generate, greedy, generate params):
- selection sets, outside the test split, where ``generate.min_confidence`` is chosen: trained products past
  the first ``evaluate.seen_examples`` (held-out phrasing) and the validation split (never trained on);
- test sets: the ``seen`` products (the first ``evaluate.seen_examples`` trained ones) and the test split.
The threshold is the midpoint between the 5th percentile of the selection's trained confidences and the
95th of its untrained ones (the test sets never choose it). Records AUROC and the shares answered from memory
at that threshold on the test sets in benchmarks/results/confidence.json; and, at the project's
``generate.min_confidence``, how many unseen answers given from memory are nonetheless right (ROUGE-L >= 0.5
against the product's own description: a series' shared blurb) and how many are invented, once answers that
open as another trained product's description are not counted as from memory (prodqa.learned).
Targets (issue 23, real records, default params): AUROC >= 0.95; <= 5% of unseen answered from memory, >= 95%
of seen.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks import record

ROOT = Path(__file__).resolve().parents[1]


RIGHT = 0.5  # ROUGE-L against the product's own description from which an answer is its description, not another's


def percentile(xs: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(xs, q))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a kept benchmarks.recall run (params.yaml, data/sample, merged)")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"), help="generate params (default: the project's)")
    ap.add_argument("--selection", type=int, help="trained products in the selection set, at most (a large run has hundreds)")
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "confidence.json"))
    args = ap.parse_args(argv)

    import pyarrow.parquet as pq
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prodqa import evaluate, generate, params, precision, template
    from prodqa.ask import recalled
    from prodqa.learned import Learned

    run = Path(args.run)
    tp, p = params.load(params.Template, run / "params.yaml"), params.load(params.Evaluate, args.params)
    gp = params.load(params.Generate, args.params)
    split = {s: pq.read_table(run / "data" / "sample" / f"{s}.parquet", columns=["title", "content"]).to_pylist()
             for s in ("train", "validation", "test")}
    sets = {"selection_trained": (split["train"][p.seen_examples:][:args.selection], True), "selection_untrained": (split["validation"], False),
            "seen": (split["train"][:p.seen_examples], True), "unseen": (split["test"], False)}
    tokenizer = AutoTokenizer.from_pretrained(run / "merged")
    model = AutoModelForCausalLM.from_pretrained(run / "merged", dtype=precision.torch_dtype(gp.precision)).eval()
    logprobs, rouge, answers = {}, {}, {}
    for name, (rows, seen) in sets.items():
        prompts = [template.encode(template.prompt(q, tp), tokenizer) for q in template.questions(rows, tp, seen)]
        generated = generate.generate(model, tokenizer, prompts, gp, p.batch_size)
        logprobs[name] = [g.logprobs for g in generated]
        metrics, per = evaluate.score([g.text for g in generated], [r["content"] for r in rows])
        answers[name] = [{"title": r["title"], "answer": g.text[:300], "confidence": g.confidence, "rougeL": e["rougeL"]}
                         for r, g, e in zip(rows, generated, per)]
        rouge[name] = metrics["rougeL"]
        print(name, len(rows), "rougeL", rouge[name], flush=True)
    # Candidate ways to sum a answer's token log-probabilities up; the selection sets choose one.
    import numpy as np

    def ways(lp: list[float]) -> dict[str, float]:
        a = np.asarray(lp or [0.0])
        return {"mean": float(np.exp(a.mean())), "p10": float(np.exp(np.percentile(a, 10))),
                "p25": float(np.exp(np.percentile(a, 25))), "min": float(np.exp(a.min())),
                "first32_mean": float(np.exp(a[:32].mean())), "first16_mean": float(np.exp(a[:16].mean()))}

    scores = {name: [ways(lp) for lp in lps] for name, lps in logprobs.items()}
    by_way = {}
    for way in scores["seen"][0]:
        conf = {name: [s[way] for s in ss] for name, ss in scores.items()}
        low, high = percentile(conf["selection_trained"], 5), percentile(conf["selection_untrained"], 95)
        threshold = round((low + high) / 2, 4)
        by_way[way] = {"selection": {"trained_p05": round(low, 4), "untrained_p95": round(high, 4),
                                     "threshold": threshold,
                                     "auroc": evaluate.auroc(conf["selection_trained"], conf["selection_untrained"])},
                       "test": evaluate.confidence_metrics(conf["seen"], conf["unseen"], threshold)}
    # An unseen product answered from memory may still be answered right: series share one blurb. Invented is
    # what matters to a user: confident, and far from the product's own description.
    # And an answer that opens as another trained product's description is not from memory (prodqa.learned).
    threshold, learned = gp.min_confidence, Learned(split["train"])
    for name, rows in answers.items():
        for a in rows:
            a["recalls_another"] = learned.another(a["title"], a["answer"])
    unseen = answers["unseen"]
    confident = [a for a in unseen if a["confidence"] >= threshold]
    kept = [a for a in confident if recalled(a["confidence"], gp, a["recalls_another"])]
    at_default = {"threshold": threshold, "unseen": len(unseen), "unseen_confident": len(confident),
                  "unseen_recalling_another": len(confident) - len(kept), "unseen_from_memory": len(kept),
                  "of_which_right": sum(a["rougeL"] >= RIGHT for a in kept),
                  "unseen_invented_from_memory": round(sum(a["rougeL"] < RIGHT for a in kept) / max(len(unseen), 1), 4),
                  **{f"{name}_from_memory": round(sum(recalled(a["confidence"], gp, a["recalls_another"])
                                                      for a in answers[name]) / max(len(answers[name]), 1), 4)
                     for name in ("selection_trained", "selection_untrained", "seen")}}
    result = {"run": str(run), "products": {k: len(v[0]) for k, v in sets.items()}, "at_default_threshold": at_default,
              "by_aggregate": by_way,
              "rougeL": rouge, "answers": answers}
    record(result, args.result)
    for way, r in by_way.items():
        print(way, json.dumps(r))


if __name__ == "__main__":
    main()
