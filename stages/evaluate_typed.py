"""DVC stage ``evaluate_typed``: trained products asked the way people type a name (see prodqa.evaluate_typed).

The fine-tuned model only: the first ``evaluate.typed_examples`` products of the train split, each asked with
its title lower-cased, cut to its first words, misspelt, and in a phrasing outside ``template.questions``.
Writes ``<answers>/seen_<way>.jsonl`` and dvclive metrics per way, with ``from_memory``: the share of answers
confident enough (``generate.min_confidence``) for ``ask`` to give them as recalled; ``seen_partial/ambiguous``
counts the products whose partial title begins another trained product's title too.
"""

from pathlib import Path

import pyarrow.parquet as pq

from prodqa import evaluate, evaluate_typed, generate, params
from prodqa.files import atomic_path, progress, write_jsonl
from prodqa.stage import parser, run


def main(argv=None):
    args = parser(__doc__, "model", "sample", "answers", "metrics").parse_args(argv)
    p = params.load(params.Evaluate, args.params)
    gp = params.load(params.Generate, args.params)
    tp = params.load(params.Template, args.params)

    from dvclive import Live

    model, tokenizer = generate.load_hf(args.model, gp)
    trained = pq.read_table(Path(args.sample) / "train.parquet", columns=["uid", "title", "content"]).to_pylist()
    rows = trained[:p.typed_examples]
    with atomic_path(args.answers, is_dir=True) as tmp, Live(args.metrics, dvcyaml=None, save_dvc_exp=False,
                                                               report=None) as live:
        sets = {f"seen_{way}": (rows, [evaluate_typed.question(r["title"], way, tp.seed) for r in rows])
                for way in evaluate_typed.WAYS}
        with progress(len(rows) * len(sets), unit="answer", desc="seen, typed") as bar:
            results = evaluate.evaluate_sets(model, tokenizer, sets, p, gp, tp, bar=bar)
        for name, (metrics, records) in results.items():
            metrics["from_memory"] = round(sum(r["confidence"] >= gp.min_confidence for r in records) / max(len(records), 1), 4)
            if name == "seen_partial":
                metrics["ambiguous"] = evaluate_typed.ambiguous_partials(rows, [r["title"] for r in trained])
            write_jsonl(Path(tmp) / f"{name}.jsonl", records)
            for key, value in metrics.items():
                live.log_metric(f"{name}/{key}", value, plot=False)
            print(name, " ".join(f"{k}={v}" for k, v in metrics.items()))


if __name__ == "__main__":
    run(main)
