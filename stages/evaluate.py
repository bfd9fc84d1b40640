"""DVC stages ``evaluate_base`` and ``evaluate``: answer held-out questions with a model and score them.

With ``--baseline`` (the ``evaluate`` stage) it also writes the side-by-side report and plots against the
base model's answers, which ``evaluate_base`` computed once and DVC keeps while only training changes.
"""

import json
from pathlib import Path

import pyarrow.parquet as pq

from prodqa import evaluate, params, report
from prodqa.files import atomic_path, progress, read_jsonl, write_json, write_jsonl
from prodqa.stage import parser, run


def main(argv=None):
    ap = parser(__doc__, "model", "test", "answers", "metrics")
    ap.add_argument("--baseline", help="answers of the base model (JSON lines from evaluate_base)")
    ap.add_argument("--report", help="folder for report.md and the plots (needs --baseline)")
    ap.add_argument("--train-plots", help="dvclive plots folder of the train stage, for the loss curve")
    args = ap.parse_args(argv)
    p = params.load("evaluate", args.params)
    tp = params.load("template", args.params)

    import torch
    from dvclive import Live
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = pq.read_table(args.test, columns=["uid", "title", "content"]).slice(0, p.max_examples).to_pylist()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, use_safetensors=True).eval()
    with progress(len(rows), unit="answer", desc=f"evaluate {Path(args.model).name}") as bar:
        metrics, records = evaluate.evaluate(model, tokenizer, rows, p, tp, bar=bar)

    write_jsonl(args.answers, records)
    with Live(args.metrics, dvcyaml=None, save_dvc_exp=False, report=None) as live:
        for name, value in metrics.items():
            live.log_metric(name, value, plot=False)
    print(" ".join(f"{k}={v}" for k, v in metrics.items()))

    if args.baseline:
        base_rows = read_jsonl(args.baseline)
        base_metrics = json.loads((Path(args.baseline).parent / "base_metrics.json").read_text())
        with atomic_path(args.report, is_dir=True) as tmp:
            report.write(tmp, base_metrics, metrics, base_rows, records, p.report_examples, args.train_plots)
    else:  # the baseline's own metrics travel with its answers, for the report
        write_json(Path(args.answers).parent / "base_metrics.json", metrics)


if __name__ == "__main__":
    run(main)
