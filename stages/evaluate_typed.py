"""DVC stage ``evaluate_typed``: trained products asked the way people type a name (see prodqa.evaluate_typed).

The fine-tuned model only: the first ``evaluate.typed_examples`` products of the train split, each asked with
its title lower-cased, cut to its first words, misspelt, and in a phrasing outside ``template.questions``.
Each question is answered twice, closed-book:

- as typed (``rougeL``…): what the model alone recalls;
- as ``ask`` asks it (``ask_rougeL``): the catalog looks the product up and the model is asked by the catalog's
  title (``ask.named``); a question the catalog finds no product for is asked as typed, and one that names
  several products is asked back (``asked_back``), the user then picking the product meant when it is listed.
  ``ask_found``: the share whose product the catalog found (or listed); ``ask_from_memory``: the share ``ask``
  answers from memory. Questions that come out the same (one product found under each way) are answered once.

Writes ``<answers>/seen_<way>.jsonl`` and dvclive metrics per way, with ``from_memory``: the share of answers
confident enough (``generate.min_confidence``) for ``ask`` to give them as recalled; ``seen_partial/ambiguous``
counts the products whose partial title begins another trained product's title too.
"""

from pathlib import Path

import pyarrow.parquet as pq

from prodqa import ask, evaluate, evaluate_typed, generate, params
from prodqa.catalog import Catalog
from prodqa.files import atomic_path, progress, write_jsonl
from prodqa.stage import parser, run


def as_asked(question: str, row: dict, catalog: Catalog, tp: params.Template) -> tuple[str | None, str, bool, bool]:
    """What ``ask`` does with a question about ``row``'s product: (the question it puts to the model, None when
    it asks back without listing the product; its answer then; whether it asked back; whether the catalog found
    or listed the product). Asked back, the user picks the product from the list."""
    match, _ = catalog.find(question)
    if match is not None and match.others:
        listed = row["title"] in {match.title, *match.others}
        return (ask.named(question, row["title"], tp) if listed else None), ask.which(match), True, listed
    return ask.named(question, match and match.title, tp), "", False, match is not None and match.title == row["title"]


def main(argv=None):
    args = parser(__doc__, "model", "sample", "catalog", "answers", "metrics").parse_args(argv)
    p = params.load(params.Evaluate, args.params)
    gp = params.load(params.Generate, args.params)
    tp = params.load(params.Template, args.params)

    from dvclive import Live

    catalog = Catalog(args.catalog)
    model, tokenizer = generate.load_hf(args.model, gp)
    trained = pq.read_table(Path(args.sample) / "train.parquet", columns=["uid", "title", "content"]).to_pylist()
    rows = trained[:p.typed_examples]
    typed = {f"seen_{way}": [evaluate_typed.question(r["title"], way, tp.seed) for r in rows] for way in evaluate_typed.WAYS}
    asked = {name: [as_asked(q, r, catalog, tp) for q, r in zip(qs, rows)] for name, qs in typed.items()}
    once = {(r["title"], a[0]): r for name in asked for r, a in zip(rows, asked[name]) if a[0] is not None}
    sets = {name: (rows, qs) for name, qs in typed.items()}
    sets["ask"] = (list(once.values()), [q for _, q in once])
    with atomic_path(args.answers, is_dir=True) as tmp, Live(args.metrics, dvcyaml=None, save_dvc_exp=False,
                                                               report=None) as live:
        with progress(sum(len(r) for r, _ in sets.values()), unit="answer", desc="seen, typed") as bar:
            results = evaluate.evaluate_sets(model, tokenizer, sets, p, gp, tp, bar=bar)
        by_question = {(r["title"], r["question"]): r for r in results.pop("ask")[1]}
        for name, (metrics, records) in results.items():
            metrics["from_memory"] = round(sum(r["confidence"] >= gp.min_confidence for r in records) / max(len(records), 1), 4)
            if name == "seen_partial":
                metrics["ambiguous"] = evaluate_typed.ambiguous_partials(rows, [r["title"] for r in trained])
            answered = [by_question.get((r["title"], q)) for r, (q, *_) in zip(rows, asked[name])]
            texts = [a["answer"] if a else back for a, (_, back, *_) in zip(answered, asked[name])]
            ask_metrics, per = evaluate.score(texts, [r["content"] for r in rows])
            metrics["ask_rougeL"] = ask_metrics["rougeL"]
            metrics["ask_found"] = round(sum(found for *_, found in asked[name]) / max(len(rows), 1), 4)
            metrics["asked_back"] = round(sum(back for _, _, back, _ in asked[name]) / max(len(rows), 1), 4)
            metrics["ask_from_memory"] = round(sum(a is not None and a["confidence"] >= gp.min_confidence
                                                   for a in answered) / max(len(rows), 1), 4)
            for record, a, (q, _, back, _), text, s in zip(records, answered, asked[name], texts, per):
                record.update({"ask_question": q, "asked_back": back, "ask_answer": text, "ask_rougeL": s["rougeL"],
                               "ask_confidence": a["confidence"] if a else None})
            write_jsonl(Path(tmp) / f"{name}.jsonl", records)
            for key, value in metrics.items():
                live.log_metric(f"{name}/{key}", value, plot=False)
            print(name, " ".join(f"{k}={v}" for k, v in metrics.items()))


if __name__ == "__main__":
    run(main)
