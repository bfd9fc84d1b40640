"""Benchmark: the reader alone (prodqa.read): each dev question answered from its own product's description.

    python -m benchmarks.reader [--gguf models/gguf/base-q8_0.gguf] [--any-span]

Every fact, typed, yes/no and unanswerable question of ``../shared/real_dev/qa_dev.jsonl`` whose product survives
``clean`` is read from that product's cleaned description, as the catalog route reads it (no lookup, no recall:
those are benchmarks.qa's). SQuAD exact match, token F1 and "contains the gold" per kind, the answers' length and
seconds a question, into benchmarks/results/reader.json (``--any-span``: reader_any_span.json, the reader without
answer types, for the comparison). Each answer also records what it would have been with "does not say" liked
``BIASES`` nats more or less (the reader's prior for it; summary ``not_said_bias``). The real records are a development
set: never a dependency of the tests.
"""

from __future__ import annotations

import argparse
import html
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks import record

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RAW = ROOT.parent / "shared" / "real_dev" / "trn_dev.jsonl"
DEFAULT_QA = ROOT.parent / "shared" / "real_dev" / "qa_dev.jsonl"
KINDS = ("fact", "typed", "yesno", "unanswerable")
BIASES = (-2.0, -1.0, 0.0, 1.0, 2.0)  # nats added to "does not say"'s score: what each would have answered


def descriptions(raw: str | Path, work: Path) -> dict[str, str]:
    """Title -> cleaned description of the raw records, through the pipeline's unpack and clean stages."""
    import json

    import pyarrow.parquet as pq

    from benchmarks.recall import override
    from prodqa import params
    from stages import clean, unpack

    prm = work / "params.yaml"
    prm.write_text(json.dumps(override(params.read_yaml(ROOT / "params.yaml"), [f"data.raw={raw}"])))
    P = ["--params", str(prm)]
    unpack.main([*P, "--raw", str(raw), "--out", str(work / "unpack.parquet"), "--metrics", str(work / "unpack.json")])
    clean.main([*P, "--src", str(work / "unpack.parquet"), "--out", str(work / "clean.parquet"),
                "--metrics", str(work / "clean.json")])
    rows = pq.read_table(work / "clean.parquet", columns=["title", "content"]).to_pylist()
    return {r["title"]: r["content"] for r in rows}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", default=str(DEFAULT_RAW))
    ap.add_argument("--qa", default=str(DEFAULT_QA))
    ap.add_argument("--gguf", default=str(ROOT / "models" / "gguf" / "base-q8_0.gguf"), help="the reader's model")
    ap.add_argument("--any-span", action="store_true", help="no answer types: any span may answer any question")
    ap.add_argument("--result", help="default benchmarks/results/reader.json (reader_any_span.json with --any-span)")
    args = ap.parse_args(argv)

    import json

    from prodqa import params, qa, read

    wants = read.wants  # what each question wants, recorded with either reader
    if args.any_span:
        read.wants = lambda question: None
    tp = params.load(params.Template, ROOT / "params.yaml")
    with tempfile.TemporaryDirectory(prefix="prodqa-reader-") as tmp:
        content = descriptions(args.raw, Path(tmp))
    questions = [{**q, "title": html.unescape(q["title"])} for q in map(json.loads, open(args.qa))
                 if q["kind"] in KINDS]
    asked = [q for q in questions if q["title"] in content]
    scorer = read.load(args.gguf)
    scored = []  # each question's candidates and their scores, as read.read chose among them
    plain = read.score

    def keeping(scorer_, opening, texts):
        scores = plain(scorer_, opening, texts)
        scored.append(dict(zip(texts, scores)))
        return scores

    read.score = keeping
    answers = []
    for q in asked:
        start = time.perf_counter()
        answer = read.read(q["question"], q["title"], content[q["title"]], scorer, tp)
        seconds = time.perf_counter() - start
        kind = "fact" if q["kind"] == "typed" else q["kind"]
        answers.append({"kind": q["kind"], "question": q["question"], "gold": q["answers"], "answer": answer,
                        "wants": wants(q["question"]), "seconds": round(seconds, 2), **qa.scored(answer, kind, q["answers"]),
                        # the answer had "does not say" been liked this many nats more (or less): the reader's prior
                        "with_bias": {b: qa.scored(max(scored[-1], key=lambda t: scored[-1][t] + b * (t == qa.NOT_SAID)),
                                                   kind, q["answers"])["f1"] for b in BIASES}})
    summary = {"not_said_bias": {b: {kind: round(statistics.mean(a["with_bias"][b] for a in answers if a["kind"] in kinds), 4)
                                     for kind, kinds in (("fact+typed", ("fact", "typed")), ("unanswerable", ("unanswerable",)))}
                                 for b in BIASES}}
    for kind in ("fact+typed", *KINDS):
        rs = [a for a in answers if a["kind"] == kind or (kind == "fact+typed" and a["kind"] in ("fact", "typed"))]
        summary[kind] = {**{k: round(statistics.mean(a[k] for a in rs), 4) for k in ("exact", "f1", "contains")},
                         "words_p50": statistics.median(a["words"] for a in rs), "questions": len(rs)}
    for kind in (*read.WANTS, None):  # fact+typed questions by the answer they want
        rs = [a for a in answers if a["kind"] in ("fact", "typed") and a["wants"] == kind]
        if rs:
            summary[f"wants {kind or 'any'}"] = {"f1": round(statistics.mean(a["f1"] for a in rs), 4),
                                                 "questions": len(rs)}
    summary["seconds_p50"] = statistics.median(a["seconds"] for a in answers)
    summary["skipped"] = len(questions) - len(asked)  # questions whose product clean dropped
    default = "reader_any_span.json" if args.any_span else "reader.json"
    record({"reader": Path(args.gguf).name, "any_span": args.any_span, "qa": Path(args.qa).name,
            "summary": summary, "answers": answers},
           args.result or ROOT / "benchmarks" / "results" / default)


if __name__ == "__main__":
    main()
