"""The side-by-side report of the ``evaluate`` stage: Markdown for people, PNG plots, JSON for ``dvc plots``.

Reads the base and fine-tuned answer records and metrics, and the training loss logged by dvclive; writes
``report.md``, ``metrics_bars.png``, ``loss.png`` and ``compare.json`` into the report folder.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

METRICS = ("rouge1", "rouge2", "rougeL", "bleu")


def _cell(text: str, limit: int = 400) -> str:
    text = text if len(text) <= limit else text[:limit] + " …"
    return text.replace("|", "\\|").replace("\n", " ") or "*(empty)*"


def markdown(base: dict, tuned: dict, base_rows: list[dict], tuned_rows: list[dict], n: int) -> str:
    lines = ["# Base vs fine-tuned answers on held-out products", "",
             f"{tuned['examples']} test products; greedy answers scored against the real descriptions.", "",
             "| metric | base | fine-tuned |", "|---|---:|---:|"]
    for k in (*METRICS, "loss", "perplexity", "empty_answers", "degenerate_answers"):
        lines.append(f"| {k} | {base[k]} | {tuned[k]} |")
    for i, (b, t) in enumerate(zip(base_rows[:n], tuned_rows[:n]), 1):
        lines += ["", f"## {i}. {_cell(t['title'], 200)}", "", f"**Question:** {_cell(t['question'], 300)}", "",
                  "| | answer | ROUGE-L |", "|---|---|---:|",
                  f"| real description | {_cell(t['reference'])} | |",
                  f"| base | {_cell(b['answer'])} | {b['rougeL']:.3f} |",
                  f"| fine-tuned | {_cell(t['answer'])} | {t['rougeL']:.3f} |"]
    return "\n".join(lines) + "\n"


def _read_tsv(path: Path) -> tuple[list[int], list[float]]:
    if not path.exists():
        return [], []
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    name = [k for k in rows[0] if k not in ("step", "timestamp")][0] if rows else "loss"
    return [int(r["step"]) for r in rows], [float(r[name]) for r in rows]


def write(out_dir: str | Path, base: dict, tuned: dict, base_rows: list[dict], tuned_rows: list[dict], n: int,
          train_plots: str | Path | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(markdown(base, tuned, base_rows, tuned_rows, n))
    compare = [{"metric": k, "model": name, "value": m[k]} for k in METRICS for name, m in (("base", base), ("tuned", tuned))]
    (out / "compare.json").write_text(json.dumps(compare, indent=1) + "\n")

    fig, ax = plt.subplots(figsize=(6, 3.2))
    xs = range(len(METRICS))
    ax.bar([x - 0.2 for x in xs], [base[k] if k != "bleu" else base[k] / 100 for k in METRICS], 0.4, label="base")
    ax.bar([x + 0.2 for x in xs], [tuned[k] if k != "bleu" else tuned[k] / 100 for k in METRICS], 0.4, label="fine-tuned")
    ax.set_xticks(list(xs), [k if k != "bleu" else "bleu/100" for k in METRICS])
    ax.set_title("Held-out answers vs real descriptions")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "metrics_bars.png", dpi=110)
    plt.close(fig)

    if train_plots:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        for split in ("train", "eval"):
            steps, values = _read_tsv(Path(train_plots) / split / "loss.tsv")
            ax.plot(steps, values, marker="o" if split == "eval" else None, label=f"{split} loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "loss.png", dpi=110)
        plt.close(fig)
