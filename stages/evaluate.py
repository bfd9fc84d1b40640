"""DVC stages ``evaluate_base`` and ``evaluate``: the same command on the base and the fine-tuned model.

Asks the ``seen`` set (trained products, held-out phrasing) and the ``unseen`` set (test products): their answers
(``<answers>/<set>.jsonl``, prodqa.evaluate; ``recalls_another``: opens as another trained product's description,
so not from memory), then questions about each product read by ``--reader`` as ``ask`` reads them
(``<answers>/qa_<set>.jsonl``, prodqa.evaluate_qa); dvclive metrics per set."""

from pathlib import Path

import pyarrow.parquet as pq

from prodqa import evaluate, evaluate_qa, generate, params, template
from prodqa.files import atomic_path, progress, write_jsonl
from prodqa.learned import Learned
from prodqa.stage import parser, run


def main(argv=None):
    args = parser(__doc__, "model", "reader", "sample", "answers", "metrics").parse_args(argv)
    p = params.load(params.Evaluate, args.params)
    gp, tp = params.load(params.Generate, args.params), params.load(params.Template, args.params)

    from dvclive import Live
    model, tokenizer = generate.load_hf(args.model, gp)
    sizes = {"seen": ("train", p.seen_examples), "unseen": ("test", p.unseen_examples)}
    sets = {}
    for name, (split, n) in sizes.items():
        rows = pq.read_table(Path(args.sample) / f"{split}.parquet", columns=["uid", "title", "content"])
        rows = rows.slice(0, n).to_pylist()
        sets[name] = (rows, template.questions(rows, tp, name == "seen"))
    learned = Learned.load(Path(args.sample) / "train.parquet")  # whose description an answer recalls
    confidences, another = {}, {}
    with atomic_path(args.answers, is_dir=True) as tmp, Live(args.metrics, dvcyaml=None, save_dvc_exp=False,
                                                               report=None) as live:
        with progress(sum(len(rows) for rows, _ in sets.values()), unit="answer",
                      desc=f"{Path(args.model).name} seen, unseen") as bar:
            results = evaluate.evaluate_sets(model, tokenizer, sets, p, gp, tp, bar=bar)  # one batch for both
        for name, (metrics, records) in results.items():
            for record in records:
                record["recalls_another"] = learned.another(record["title"], record["answer"])
            write_jsonl(Path(tmp) / f"{name}.jsonl", records)
            for key, value in metrics.items():
                live.log_metric(f"{name}/{key}", value, plot=False)
            print(name, " ".join(f"{k}={v}" for k, v in metrics.items()))
            confidences[name] = [r["confidence"] for r in records]
            another[name] = [r["recalls_another"] is not None for r in records]
        for key, value in evaluate.confidence_metrics(confidences["seen"], confidences["unseen"], gp.min_confidence,
                                                      another["seen"], another["unseen"]).items():
            live.log_metric(f"confidence/{key}", value, plot=False)
        reader = (model, tokenizer) if args.reader == args.model else generate.load_hf(args.reader, gp)
        read = evaluate_qa.answer_questions(reader, {n: r for n, (_, r) in results.items()}, p, gp, tp)
        for name, (summary, rows) in read.items():
            write_jsonl(Path(tmp) / f"qa_{name}.jsonl", rows)
            for key, value in evaluate_qa.flat(summary, f"qa_{name}").items():
                live.log_metric(key, value, plot=False)
        live.summary["precision"] = str(model.dtype).removeprefix("torch.")


if __name__ == "__main__":
    run(main)
