"""DVC stage ``evaluate_typed``: trained products asked the way people type a name (see prodqa.evaluate_typed).

The first ``evaluate.typed_examples`` trained products, each asked with its title lower-cased, cut to its first
words, misspelt, and in a phrasing outside ``template.questions``; by the fine-tuned model closed-book, as typed
(``rougeL``; ``from_memory``: confident enough for ``ask`` to give it as recalled) and as ``ask`` asks it (by the
catalog's title, ``ask.as_asked``: ``ask_rougeL``, ``ask_from_memory``, ``ask_found``, ``asked_back``), each
distinct question once. ``seen_partial/ambiguous``: partial titles that begin another trained title too.
"""

from pathlib import Path

import pyarrow.parquet as pq

from prodqa import ask, evaluate, evaluate_typed, generate, params
from prodqa.catalog import Catalog
from prodqa.files import atomic_path, progress, write_jsonl
from prodqa.stage import parser, run


def main(argv=None):
    args = parser(__doc__, "model", "sample", "catalog", "answers", "metrics").parse_args(argv)
    p, gp, tp = params.load(params.Evaluate, args.params), params.load(params.Generate, args.params), params.load(params.Template, args.params)

    from dvclive import Live

    catalog = Catalog(args.catalog)
    model, tokenizer = generate.load_hf(args.model, gp)
    trained = pq.read_table(Path(args.sample) / "train.parquet", columns=["uid", "title", "content"]).to_pylist()
    rows = trained[:p.typed_examples]
    typed = evaluate_typed.typed_sets(rows, tp.seed)
    asked = {name: [ask.as_asked(q, r["title"], catalog, tp) for q, r in zip(qs, rows)] for name, qs in typed.items()}
    once = {(r["title"], a[0]): r for name in asked for r, a in zip(rows, asked[name]) if a[0] is not None}
    sets = {**{name: (rows, qs) for name, qs in typed.items()}, "ask": (list(once.values()), [q for _, q in once])}
    with atomic_path(args.answers, is_dir=True) as tmp, Live(args.metrics, dvcyaml=None, save_dvc_exp=False,
                                                               report=None) as live:
        with progress(sum(len(qs) for _, qs in sets.values()), unit="answer", desc="seen, typed") as bar:
            results = evaluate.evaluate_sets(model, tokenizer, sets, p, gp, tp, bar=bar)
        by_question = {(r["title"], r["question"]): r for r in results.pop("ask")[1]}
        for name, (metrics, records) in results.items():
            answered = [by_question.get((r["title"], a[0])) for r, a in zip(rows, asked[name])]
            texts = [got["answer"] if got else a[1] for got, a in zip(answered, asked[name])]
            scores, per = evaluate.score(texts, [r["content"] for r in rows])
            share = lambda xs: round(sum(xs) / max(len(xs), 1), 4)  # noqa: E731
            metrics.update(from_memory=share([r["confidence"] >= gp.min_confidence for r in records]),
                           ask_rougeL=scores["rougeL"], ask_found=share([a[3] for a in asked[name]]),
                           ask_from_memory=share([got is not None and got["confidence"] >= gp.min_confidence for got in answered]),
                           asked_back=share([a[2] for a in asked[name]]))
            if name == "seen_partial":
                metrics["ambiguous"] = evaluate_typed.ambiguous_partials(rows, [r["title"] for r in trained])
            for record, got, a, text, s in zip(records, answered, asked[name], texts, per):
                record.update(ask_question=a[0], asked_back=a[2], ask_answer=text, ask_rougeL=s["rougeL"],
                              ask_confidence=got["confidence"] if got else None)
            write_jsonl(Path(tmp) / f"{name}.jsonl", records)
            for key, value in metrics.items():
                live.log_metric(f"{name}/{key}", value, plot=False)
            print(name, " ".join(f"{k}={v}" for k, v in metrics.items()))


if __name__ == "__main__":
    run(main)
