"""The current figures, rendered from the results table (benchmarks/results/runs.jsonl) into the README.

    python -m benchmarks.table            # print the table
    python -m benchmarks.table --write    # replace the README's generated block with it
    python -m benchmarks.table --check    # exit 1 if a figure's runs are not of the work tree's code

Each figure (:data:`FIGURES`) is read from the records of its result file: the newest run and every other run of
the same code (``code``: benchmarks.code, the digest of the files a result depends on) and the default params, as
the median, with the
range and the number of runs when there are several. A row names the commit and the result file, so the run
behind a number is one step away. ``tests/test_table.py`` fails when the README's block is not what this renders.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks import README, RUNS, code

BEGIN, END = "<!-- benchmarks.table: begin -->", "<!-- benchmarks.table: end -->"


@dataclass(frozen=True)
class Figure:
    label: str
    file: str  # the result file whose records hold it (a record's "file")
    key: str  # its path in the record, dotted
    form: str = "{:.3f}"  # how a value is written: a format, or "%" (a share as a percentage), or "min" (seconds)
    then: str = " → "  # a continuation row (no label) is added to the row above after this


RECALL, QA = "benchmarks/results/recall.json", "benchmarks/results/qa.json"
READER = "benchmarks/results/reader.json"
TIMED = "benchmarks/results/timed_{}.json"  # python -m benchmarks.timed --name …
FIGURES = [
    Figure("seen ROUGE-L, base → fine-tuned", RECALL, "summary.seen.rougeL.base"),
    Figure("", RECALL, "summary.seen.rougeL.tuned"),
    Figure("unseen ROUGE-L, base → fine-tuned", RECALL, "summary.unseen.rougeL.base"),
    Figure("", RECALL, "summary.unseen.rougeL.tuned"),
    Figure("validation loss", RECALL, "summary.validation_loss", "{:.2f}"),
    Figure("training tokens per learned product", RECALL, "summary.cost.tokens_per_product", "{:,.0f}"),
    Figure("confidence AUROC, seen vs unseen", RECALL, "scores.tuned.confidence.auroc"),
    Figure("answered from memory: seen", RECALL, "scores.tuned.confidence.seen_from_memory", "%"),
    Figure("answered from memory: unseen", RECALL, "scores.tuned.confidence.unseen_from_memory", "%"),
    Figure("unseen confident on another trained product (vetoed)", RECALL,
           "scores.tuned.confidence.unseen_another_product", "%"),
    Figure("asked as typed, through the catalog: ROUGE-L", RECALL, "summary.typed.seen_lower.ask_rougeL"),
    Figure("the model asked as typed: lower case", RECALL, "summary.typed.seen_lower.rougeL"),
    Figure("the model asked as typed: first words", RECALL, "summary.typed.seen_partial.rougeL"),
    Figure("the model asked as typed: a typo", RECALL, "summary.typed.seen_typo.rougeL"),
    Figure("the model asked as typed: own words", RECALL, "summary.typed.seen_free.rougeL"),
    Figure("QA, seen, fact questions: token F1, base → fine-tuned", QA, "summary.base/seen.fact+typed.f1"),
    Figure("", QA, "summary.tuned/seen.fact+typed.f1"),
    Figure("QA, seen: answer contains the gold, fine-tuned", QA, "summary.tuned/seen.fact+typed.contains"),
    Figure("QA, unseen (from the catalog), fact questions: token F1, base → fine-tuned", QA,
           "summary.base/unseen.fact+typed.f1"),
    Figure("", QA, "summary.tuned/unseen.fact+typed.f1"),
    Figure("QA, seen, yes/no: right, fine-tuned", QA, "summary.tuned/seen.yesno.exact"),
    Figure("QA, unanswerable: \"does not say\", seen / unseen", QA, "summary.tuned/seen.unanswerable.exact", "%"),
    Figure("", QA, "summary.tuned/unseen.unanswerable.exact", "%", " / "),
    Figure("QA: the product found (or asked back)", QA, "summary.lookup.found_or_asked_back", "%"),
    Figure("QA: the product in the catalog, but answered \"not in the catalog\" (questions)", QA,
           "summary.lookup.not in the catalog", "{:.0f}"),
    Figure("the reader alone, each dev question with its product's description: fact token F1", READER,
           "summary.fact+typed.f1"),
    Figure("QA: a short answer from the GGUF, p50 seconds", QA, "summary.tuned/seen.seconds_p50_specific", "{:.1f}"),
    Figure("`make repro`, a fresh clone, empty pip cache (set-up included)", TIMED.format("make_repro_fresh"),
           "seconds", "min"),
    Figure("`dvc repro --force`, set-up done", TIMED.format("dvc_repro"), "seconds", "min"),
    Figure("`dvc repro --force`, AVX2 emulated, fp32 (faster than an AVX2-only EPYC)", TIMED.format("dvc_repro_avx2"),
           "seconds", "min"),
    Figure("`make test`, set-up done", TIMED.format("make_test"), "seconds", "min"),
]


def load(path: Path = RUNS) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def value(run: dict, key: str):
    for part in key.split("."):
        if not isinstance(run, dict) or part not in run:
            return None
        run = run[part]
    return run


def current(runs: list[dict], file: str) -> list[dict]:
    """The newest run of the defaults recorded for ``file`` and every other run of its code, oldest first (runs with
    ``-S`` overrides, and migrated runs, which have no code digest, are history, not current figures)."""
    mine = [r for r in runs if r.get("file") == file and r.get("code") and not r.get("overrides")]
    return [r for r in mine if r["code"] == mine[-1]["code"]] if mine else []


def written(x: float, form: str) -> str:
    if form == "%":
        return f"{100 * x:.1f}%"
    if form == "min":
        return f"{int(x // 60)} min {round(x % 60)} s"
    return form.format(x)


def cell(runs: list[dict], f: Figure) -> str:
    """The median of ``f`` over ``runs``, with its range and n when there are several; "—" when none has it."""
    xs = [x for r in runs if isinstance(x := value(r, f.key), (int, float))]
    if not xs:
        return "—"
    text = written(statistics.median(xs), f.form)
    return text if len(xs) == 1 else f"{text} ({written(min(xs), f.form)}–{written(max(xs), f.form)}, n={len(xs)})"


def render(runs: list[dict]) -> str:
    """The figures as a Markdown table (a figure with an empty label continues the row above: "base → tuned"), and
    under it the runs each result file's figures come from."""
    rows, sources = [], {}
    for f in FIGURES:
        chosen = current(runs, f.file)
        if chosen:
            sources[f.file] = chosen
        if f.label or not rows:
            rows.append([f.label, cell(chosen, f), f.file])
        else:
            rows[-1][1] += f"{f.then}{cell(chosen, f)}"
    lines = ["| figure | value | record |", "|---|---:|---|"]
    lines += [f"| {label} | {v} | `{Path(file).name}` |" for label, v, file in rows]
    lines.append("")
    for file, chosen in sources.items():
        commits = ", ".join(dict.fromkeys(r["commit"] for r in chosen))
        cpu = chosen[-1].get("cpu", {})
        flags = "AMX" if any(f.startswith("amx") for f in cpu.get("flags", [])) else \
            "AVX512-BF16" if "avx512_bf16" in cpu.get("flags", []) else "AVX2 only"
        lines.append(f"- `{file}`: {len(chosen)} run(s) of code `{chosen[-1]['code']}` (commit {commits}, "
                     f"{chosen[-1]['date']}, {cpu.get('model', '?')} with {flags}): `{chosen[-1]['command']}`")
    return "\n".join(lines) + "\n"


def block(text: str) -> str | None:
    """The generated block of a README's text (between :data:`BEGIN` and :data:`END`), or None."""
    if BEGIN not in text or END not in text:
        return None
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def module(run: dict) -> str:
    """The benchmark module that recorded ``run``, as its command names it ("python -m benchmarks.recall …")."""
    return run["command"].split()[2].removeprefix("benchmarks.")


def stale(runs: list[dict]) -> list[str]:
    """The result files whose current runs are not of the work tree's code (a benchmark to re-run)."""
    out = []
    for file in dict.fromkeys(f.file for f in FIGURES):
        chosen = current(runs, file)
        if not chosen or chosen[-1]["code"] != code(module(chosen[-1])):
            out.append(file)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help=f"replace the block of {README.name} between its markers")
    ap.add_argument("--check", action="store_true", help="exit 1 when a figure's runs are not of today's code")
    args = ap.parse_args(argv)
    runs = load()
    table = render(runs)
    if args.write:
        text = README.read_text()
        if block(text) is None:
            sys.exit(f"{README}: no {BEGIN} … {END} block to write the table into")
        head, rest = text.split(BEGIN, 1)
        README.write_text(f"{head}{BEGIN}\n{table}{END}{rest.split(END, 1)[1]}")
    elif not args.check:
        print(table, end="")
    if args.check:
        old = stale(runs)
        for file in old:
            print(f"{file}: its newest runs are not of the work tree's code: re-run its benchmark", file=sys.stderr)
        sys.exit(1 if old else 0)


if __name__ == "__main__":
    main()
