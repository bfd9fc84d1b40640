"""Stage ``report``: base vs fine-tuned answers, on seen and unseen products, for people and for ``dvc plots``.

Reads both models' metrics (``{"seen": {...}, "unseen": {...}}``) and answer records, and the training loss
logged by dvclive; writes ``report.md``, ``metrics_bars.png``, ``loss.png`` and ``compare.json``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .template import SETS

METRICS = ("rouge1", "rouge2", "rougeL", "bleu")
ROWS = (*METRICS, "loss", "perplexity", "confidence", "empty_answers", "degenerate_answers")
TITLES = {"seen": "Seen: trained products, asked a phrasing they never had in training (closed-book recall)",
          "unseen": "Unseen: test products the model never saw (generalisation, or guessing)"}


def _cell(text: str, limit: int = 400) -> str:
    text = text if len(text) <= limit else text[:limit] + " …"
    return text.replace("|", "\\|").replace("\n", " ") or "*(empty)*"


def markdown(metrics: dict, answers: dict, n: int, typed: dict | None = None) -> str:
    """``metrics[model][set]`` and ``answers[model][set]`` for model in base/tuned, set in seen/unseen; ``typed``:
    the fine-tuned model's metrics per way people type (stage evaluate_typed), when there are any."""
    lines = ["# Base vs fine-tuned answers", "",
             "Greedy answers scored against the real descriptions (ROUGE with stemming, sacrebleu BLEU); loss is "
             "the real description's mean token loss under each model.", "",
             "| metric | " + " | ".join(f"{s} base | {s} fine-tuned" for s in SETS) + " |",
             "|---|" + "---:|" * (2 * len(SETS))]
    for k in ROWS:
        lines.append(f"| {k} | " + " | ".join(f"{metrics['base'][s].get(k, '')} | {metrics['tuned'][s].get(k, '')}"
                                              for s in SETS) + " |")
    c = metrics["tuned"].get("confidence")
    if c:
        lines += ["", f"Confidence (the fine-tuned model's, `generate.min_confidence` {c['threshold']}): AUROC seen vs "
                  f"unseen **{c['auroc']}**; answered from memory: **{c['seen_from_memory']:.0%}** of seen questions, "
                  f"**{c['unseen_from_memory']:.0%}** of unseen ones (confident guesses), not counting the "
                  f"{c.get('unseen_another_product', 0):.0%} of unseen ones confident but opening as another trained "
                  "product's description (answered from the catalog). Histogram: `confidence.png`."]
    if typed:
        lines += ["", "## Trained products asked the way people type", "",
                  "| asked with the title | ROUGE-L | confidence | answered from memory |", "|---|---:|---:|---:|",
                  f"| exact (the seen set) | {metrics['tuned']['seen']['rougeL']} | "
                  f"{metrics['tuned']['seen'].get('confidence', '')} | "
                  f"{metrics['tuned'].get('confidence', {}).get('seen_from_memory', '')} |"]
        lines += [f"| {name.removeprefix('seen_')} | {m['rougeL']} | {m.get('confidence', '')} | {m.get('from_memory', '')} |"
                  for name, m in typed.items()]
        if "seen_partial" in typed and "ambiguous" in typed["seen_partial"]:
            lines += ["", f"{typed['seen_partial']['ambiguous']} of {typed['seen_partial']['examples']} partial titles "
                      "begin another trained product's title too."]
    lines += questions(metrics, answers, n)
    for s in SETS:
        lines += ["", f"## {TITLES[s]}", ""]
        for i, (b, t) in enumerate(zip(answers["base"][s][:n], answers["tuned"][s][:n]), 1):
            lines += [f"### {i}. {_cell(t['title'], 200)}", "", f"**Question:** {_cell(t['question'], 300)}", "",
                      "| | answer | ROUGE-L | confidence |", "|---|---|---:|---:|",
                      f"| real description | {_cell(t['reference'])} | | |",
                      f"| base | {_cell(b['answer'])} | {b['rougeL']:.3f} | {b.get('confidence', '')} |",
                      f"| fine-tuned | {_cell(t['answer'])} | {t['rougeL']:.3f} | {t.get('confidence', '')} |", ""]
    return "\n".join(lines).rstrip() + "\n"


def questions(metrics: dict, answers: dict, n: int) -> list[str]:
    """The question-answering section (prodqa.evaluate_qa): SQuAD scores per kind, base and fine-tuned, and ``n``
    questions of each set with the gold answer and both models' answers side by side."""
    sets = [s for s in SETS if f"qa_{s}" in metrics["tuned"]]
    if not sets:
        return []
    lines = ["", "## Questions about the products, answered in a few words", "",
             "Each product asked a fact, a yes/no and an unanswerable question in phrasings training never used, read "
             "from the model's own recitation when it is sure of it (memory), else from the catalog's description; "
             "exact match and token F1 as SQuAD scores them, *contains*: the gold answer inside the answer.", "",
             "| set | kind | questions | exact base | exact fine-tuned | F1 base | F1 fine-tuned | contains fine-tuned "
             "| words (median) base | fine-tuned |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in sets:
        for kind, t in metrics["tuned"][f"qa_{s}"].items():
            b = metrics["base"].get(f"qa_{s}", {}).get(kind, {})
            lines.append(f"| {s} | {kind} | {t.get('questions', '')} | {b.get('exact', '')} | {t.get('exact', '')} | "
                         f"{b.get('f1', '')} | {t.get('f1', '')} | {t.get('contains', '')} | {b.get('words_p50', '')} | "
                         f"{t.get('words_p50', '')} |")
    for s in sets:
        base = {(r["title"], r["question"]): r for r in answers["base"].get(f"qa_{s}", [])}
        lines += ["", f"### {s}: questions and answers", "", "| product | question | gold | base | fine-tuned (from) |",
                  "|---|---|---|---|---|"]
        for t in answers["tuned"].get(f"qa_{s}", [])[:3 * n]:
            b = base.get((t["title"], t["question"]), {})
            lines.append(f"| {_cell(t['title'], 60)} | {_cell(t['question'], 120)} | {_cell(t['gold'], 60)} | "
                         f"{_cell(b.get('answer', ''), 120)} | {_cell(t['answer'], 120)} ({t['source']}) |")
    return lines


def _read_tsv(path: Path) -> tuple[list[int], list[float]]:
    if not path.exists():
        return [], []
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    name = [k for k in rows[0] if k not in ("step", "timestamp")][0] if rows else "loss"
    return [int(r["step"]) for r in rows], [float(r[name]) for r in rows]


def write(out_dir: str | Path, metrics: dict, answers: dict, n: int, train_plots: str | Path | None,
          typed: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(markdown(metrics, answers, n, typed))
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
    bins = [i / 40 for i in range(41)]
    for s, label in (("seen", "seen (trained)"), ("unseen", "unseen (never trained)")):
        ax.hist([a["confidence"] for a in answers["tuned"][s] if "confidence" in a], bins=bins, alpha=0.6, label=label)
    threshold = metrics["tuned"].get("confidence", {}).get("threshold")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", label=f"min_confidence {threshold}")
    ax.set_xlabel("confidence of the fine-tuned model's answer")
    ax.set_ylabel("answers")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "confidence.png", dpi=110)
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
