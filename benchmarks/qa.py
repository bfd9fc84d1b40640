"""Benchmark: questions about real products answered through ``ask`` as people type them (issue 54).

    python -m benchmarks.qa [--keep DIR] [--reuse DIR] [-S train.seed=43 ...]

Trains on the real development records with today's params (the pipeline of benchmarks.recall, in ``--keep``; or
``--reuse`` a folder such a run left), builds their catalog and the q8_0 GGUF files, then asks every question of
``../shared/real_dev/qa_dev.jsonl`` whose product was trained (**seen**: answered from memory, if the model is
sure) or is in the test split (**unseen**: from the catalog) through :func:`prodqa.ask.route`, as typed, on the
fine-tuned GGUF and on the base model's, one at a time as ``ask`` does. Scored as ``QA.md`` says: fact, typed and
yes/no questions by SQuAD exact match, token F1 and "contains" (prodqa.qa), overview ones by ROUGE-L against the
description, unanswerable ones by whether the answer says the description does not say; ``read_from_evidence``: the
share of short answers found word for word in the description they were read from. Also: the lookup over
every question whose product is in the catalog (found, asked back, wrong, or "not in the catalog"), and seconds
per answer (a specific answer: the recitation and its reading).
Records benchmarks/results/qa.json (summary and every answer). The real records are a development set: never a
dependency of the tests or of ``make repro``.
Targets (issue 54): seen fact+typed F1 >= 0.75, contains >= 0.85, median <= 12 words; unseen F1 >= 0.75; lookup
>= 95% found or asked back, none "not in the catalog"; unanswerable >= 80% "does not say"; yes/no >= 0.85;
a specific answer from the GGUF in <= 3 s (p50).
"""

from __future__ import annotations

import argparse
import html
import json
import statistics
import time
from pathlib import Path

from benchmarks import record

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_QA = ROOT.parent / "shared" / "real_dev" / "qa_dev.jsonl"
SCORED_AS_FACT = {"fact", "typed"}


def share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def lookup(catalog, questions: list[dict]) -> dict:
    """How the catalog finds the product each question is about (those whose product is in the catalog)."""
    from collections import Counter

    titles = {r[0] for r in catalog.db.execute("SELECT title FROM products")}
    seen = Counter(dict.fromkeys(("found", "asked back", "another product", "not in the catalog"), 0))
    for q in questions:
        if q["title"] not in titles:
            continue
        match, _ = catalog.find(q["question"])
        seen["not in the catalog" if match is None else
             ("asked back" if q["title"] in {match.title, *match.others} else "another product") if match.asks_back
             else "found" if match.title == q["title"] else "another product"] += 1
    n = sum(seen.values())
    return {**seen, "questions": n, "found_or_asked_back": round((seen["found"] + seen["asked back"]) / max(n, 1), 4)}


def score(q: dict, answer: str, content: str) -> dict:
    from rouge_score import rouge_scorer

    from prodqa import qa

    if q["kind"] == "overview":
        r = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(content, answer)["rougeL"].fmeasure
        return {"rougeL": round(r, 4), "words": len(answer.split())}
    return qa.scored(answer, "fact" if q["kind"] in SCORED_AS_FACT else q["kind"], q["answers"])


def in_evidence(answer: str, evidence: str | None) -> bool | None:
    """Whether a short answer is read from its evidence: its words, normalised, appear there in order (None for an
    answer that is no fact: the description itself, yes/no, "does not say", or one with no evidence)."""
    from prodqa import qa

    said = qa.normalize(answer)
    if evidence is None or not said or said.split()[0] in {"yes", "no"} or qa.says_not_said(answer):
        return None
    return f" {said} " in f" {qa.normalize(evidence)} "


def summarise(records: list[dict]) -> dict:
    out = {}
    for kind in ("fact+typed", "fact", "typed", "yesno", "unanswerable", "overview"):
        rs = [r for r in records if r["kind"] == kind or (kind == "fact+typed" and r["kind"] in SCORED_AS_FACT)]
        if not rs:
            continue
        keys = ["rougeL"] if kind == "overview" else ["exact", "f1", "contains"]
        out[kind] = {**{k: round(statistics.mean(r[k] for r in rs), 4) for k in keys},
                     "words_p50": statistics.median(r["words"] for r in rs), "questions": len(rs),
                     "read_from_evidence": share([r["in_evidence"] for r in rs if r["in_evidence"] is not None]),
                     "sources": {s: sum(r["source"] == s for r in rs) for s in sorted({r["source"] for r in rs})}}
    specific = [r["seconds"] for r in records if r["kind"] != "overview"]
    out["seconds_p50_specific"] = round(statistics.median(specific), 2) if specific else None
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qa", default=str(DEFAULT_QA))
    ap.add_argument("--keep", help="scratch folder for the training run (benchmarks.recall --keep)")
    ap.add_argument("--reuse", help="a folder a benchmarks.recall (or this) run left: train nothing")
    ap.add_argument("-S", "--set", action="append", default=[], help="params override, e.g. train.seed=43")
    ap.add_argument("--skip-base", action="store_true", help="no in-pipeline evaluation of the base model (recipe "
                    "sweeps); its answers through ask are still recorded")
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "qa.json"))
    args = ap.parse_args(argv)

    import pyarrow.parquet as pq

    from benchmarks import recall
    from prodqa import ask, params, read
    from prodqa.catalog import Catalog
    from prodqa.generate import load_gguf, stream_gguf
    from prodqa.learned import Learned
    from stages import catalog as catalog_stage
    from stages import export_gguf

    work = Path(args.reuse or args.keep or "")
    if not args.reuse:
        if not args.keep:
            ap.error("--keep DIR (a new run) or --reuse DIR")
        recall.main(["--keep", args.keep, "--skip-typed", *(["--skip-base"] if args.skip_base else []),
                     *sum((["-S", s] for s in args.set), []),
                     "--result", str(work / "recall.json")])
    prm = work / "params.yaml"
    d = work / "data"
    if not (d / "catalog.sqlite").exists():
        catalog_stage.main(["--params", str(prm), "--src", str(d / "clean.parquet"), "--out", str(d / "catalog.sqlite"),
                            "--metrics", str(work / "metrics" / "catalog.json")])
    if not (work / "gguf" / "model-q8_0.gguf").exists():
        export_gguf.main(["--params", str(prm), "--merged", str(work / "merged"), "--base", str(work / "base"),
                          "--test", str(d / "sample" / "test.parquet"), "--out", str(work / "gguf"),
                          "--metrics", str(work / "metrics" / "export.json")])
    tp, gp = params.load(params.Template, prm), params.load(params.Generate, prm)
    catalog = Catalog(d / "catalog.sqlite")
    split = {r["title"]: (name, r["content"]) for name, part in (("seen", "train"), ("unseen", "test"))
             for r in pq.read_table(d / "sample" / f"{part}.parquet", columns=["title", "content"]).to_pylist()}
    questions = [{**q, "title": html.unescape(q["title"])} for q in map(json.loads, open(args.qa))]
    asked = [q for q in questions if q["title"] in split]
    learned = Learned.load(d / "sample" / "train.parquet")
    results = {"lookup": lookup(catalog, questions)}
    answers = []
    scorer = read.load(work / "gguf" / "base-q8_0.gguf")  # the reader, for both: the base model
    reader = lambda q, title, description: read.read(q, title, description, scorer, tp)  # noqa: E731
    for model, path in (("tuned", work / "gguf" / "model-q8_0.gguf"), ("base", work / "gguf" / "base-q8_0.gguf")):
        llm = load_gguf(path)
        for q in asked:
            start = time.perf_counter()
            closed = lambda p: stream_gguf(llm, p, gp)  # noqa: E731
            routed = ask.route(q["question"], tp, gp, closed, reader, catalog, learned)
            text = "".join(routed.pieces).strip()
            seconds = time.perf_counter() - start
            the_set, content = split[q["title"]]
            answers.append({"model": model, "set": the_set, "kind": q["kind"], "question": q["question"],
                            "gold": q["answers"], "answer": text, "source": routed.source, "label": routed.label,
                            "evidence": routed.evidence, "seconds": round(seconds, 2), **score(q, text, content),
                            "in_evidence": in_evidence(text, routed.evidence)})
        for the_set in ("seen", "unseen"):
            results[f"{model}/{the_set}"] = summarise([a for a in answers if a["model"] == model and a["set"] == the_set])
    doc = json.loads(prm.read_text())
    result = {"overrides": args.set,
              "qa": Path(args.qa).name,
              "recipe": {f"{s}.{k}": doc[s][k] for s, keys in recall.RECIPE.items() for k in keys},
              "template_tokens": json.loads((work / "metrics" / "template.json").read_text())["train"],
              "summary": results, "answers": answers}
    record(result, args.result)


if __name__ == "__main__":
    main()
