"""DVC stage ``report``: base vs fine-tuned, seen vs unseen, side by side (see prodqa.report)."""

import json
from pathlib import Path

from prodqa import params, report
from prodqa.template import SETS
from prodqa.files import atomic_path, read_jsonl
from prodqa.stage import parser, run


def main(argv=None):
    args = parser(__doc__, "base_answers", "base_metrics", "tuned_answers", "tuned_metrics", "typed_metrics", "train_plots",
                  "out").parse_args(argv)
    p = params.load(params.Report, args.params)
    metrics, answers = {}, {}
    for model in ("base", "tuned"):
        metrics[model] = json.loads(Path(getattr(args, f"{model}_metrics")).read_text())
        folder = Path(getattr(args, f"{model}_answers"))
        answers[model] = {name: read_jsonl(folder / f"{name}.jsonl") for name in SETS}
        answers[model].update({f"qa_{name}": read_jsonl(folder / f"qa_{name}.jsonl") for name in SETS
                               if (folder / f"qa_{name}.jsonl").exists()})
    with atomic_path(args.out, is_dir=True) as tmp:
        typed = json.loads(Path(args.typed_metrics).read_text()) if Path(args.typed_metrics).exists() else None
        report.write(tmp, metrics, answers, p.examples, args.train_plots, typed)


if __name__ == "__main__":
    run(main)
