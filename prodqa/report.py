"""Stage ``report``: base vs fine-tuned answers, on seen and unseen products, for people and for ``dvc plots``.

Reads both models' metrics (``{"seen": {...}, "unseen": {...}}``) and answer records, and the training loss
logged by dvclive; writes ``report.md``, ``metrics_bars.png``, ``loss.png`` and ``compare.json``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .evaluate import SETS

METRICS = ("rouge1", "rouge2", "rougeL", "bleu")
ROWS = (*METRICS, "loss", "perplexity", "empty_answers", "degenerate_answers")
TITLES = {"seen": "Seen: trained products, asked a phrasing they never had in training (closed-book recall)",
          "unseen": "Unseen: test products the model never saw (generalisation, or guessing)"}


def _cell(text: str, limit: int = 400) -> str:
    text = text if len(text) <= limit else text[:limit] + " …"
    return text.replace("|", "\\|").replace("\n", " ") or "*(empty)*"


def markdown(metrics: dict, answers: dict, n: int) -> str:
    """``metrics[model][set]`` and ``answers[model][set]`` for model in base/tuned, set in seen/unseen."""
    lines = ["# Base vs fine-tuned answers", "",
             "Greedy answers scored against the real descriptions (ROUGE with stemming, sacrebleu BLEU); loss is "
             "the real description's mean token loss under each model.", "",
             "| metric | " + " | ".join(f"{s} base | {s} fine-tuned" for s in SETS) + " |",
             "|---|" + "---:|" * (2 * len(SETS))]
    for k in ROWS:
        lines.append(f"| {k} | " + " | ".join(f"{metrics['base'][s][k]} | {metrics['tuned'][s][k]}" for s in SETS) + " |")
    for s in SETS:
        lines += ["", f"## {TITLES[s]}", ""]
        for i, (b, t) in enumerate(zip(answers["base"][s][:n], answers["tuned"][s][:n]), 1):
            lines += [f"### {i}. {_cell(t['title'], 200)}", "", f"**Question:** {_cell(t['question'], 300)}", "",
                      "| | answer | ROUGE-L |", "|---|---|---:|",
                      f"| real description | {_cell(t['reference'])} | |",
                      f"| base | {_cell(b['answer'])} | {b['rougeL']:.3f} |",
                      f"| fine-tuned | {_cell(t['answer'])} | {t['rougeL']:.3f} |", ""]
    return "\n".join(lines).rstrip() + "\n"


def _read_tsv(path: Path) -> tuple[list[int], list[float]]:
    if not path.exists():
        return [], []
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    name = [k for k in rows[0] if k not in ("step", "timestamp")][0] if rows else "loss"
    return [int(r["step"]) for r in rows], [float(r[name]) for r in rows]


def write(out_dir: str | Path, metrics: dict, answers: dict, n: int, train_plots: str | Path | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(markdown(metrics, answers, n))
    compare = [{"metric": f"{s} {k}", "model": model, "value": metrics[model][s][k]}
               for s in SETS for k in METRICS for model in ("base", "tuned")]
    (out / "compare.json").write_text(json.dumps(compare, indent=1) + "\n")

    fig, axes = plt.subplots(1, len(SETS), figsize=(9, 3.2), sharey=True)
    xs = range(len(METRICS))
    for ax, s in zip(axes, SETS):
        for shift, model, label in ((-0.2, "base", "base"), (0.2, "tuned", "fine-tuned")):
            m = metrics[model][s]
            ax.bar([x + shift for x in xs], [m[k] / 100 if k == "bleu" else m[k] for k in METRICS], 0.4, label=label)
        ax.set_xticks(list(xs), [k if k != "bleu" else "bleu/100" for k in METRICS])
        ax.set_title(f"{s} products")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "metrics_bars.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for split in ("train", "eval"):
        steps, values = _read_tsv(Path(train_plots) / split / "loss.tsv") if train_plots else ([], [])
        ax.plot(steps, values, marker="o" if split == "eval" else None, label=f"{split} loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=110)
    plt.close(fig)
