"""Benchmark: what the pipeline learns of real products, seen and unseen, base and fine-tuned.

    python -m benchmarks.recall [--raw ../shared/real_dev/trn_dev.jsonl] [-S train.num_train_epochs=20 ...]

Runs the pipeline's own stages (unpack → clean → sample → base_model → template → train → evaluate on
both models) on real ``trn.json`` lines in a scratch folder, with ``params.yaml`` plus the ``-S`` overrides,
and records the seen/unseen scores, the training time and the params in benchmarks/results/recall.json
(one entry per run is appended to recall_runs.jsonl, the sweep log).
Targets (issue 10, real records, default params): seen tuned ROUGE-L >= 0.5 with a reference loss >= 90%
below the base model's; unseen tuned ROUGE-L >= 1.25 x base with no more degenerate answers than base.
The real records are a development set: never a dependency of the tests or of `make repro`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks import record

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RAW = ROOT.parent / "shared" / "real_dev" / "trn_dev.jsonl"
# The params that make the recipe and set its speed, written with every run so the sweep log reads without the
# params.yaml of the day.
RECIPE = {"sample": ["n_products"], "template": ["format", "phrasings_per_product", "typed_share", "max_seq_len", "system_prompt", "qa_per_product",
                       "qa_context_chars"],
          "train": ["method", "num_train_epochs", "learning_rate", "per_device_train_batch_size", "lr_batch_scaling", "warmup_steps", "loraplus_lr_ratio", "focal_gamma", "opening_weight",
                    "lora_r", "lora_alpha", "target_modules", "lora_first_layer", "lr_scheduler_type", "attention",
                    "torch_compile", "frozen_cache_mib", "seed"]}


def override(doc: dict, assignments: list[str]) -> dict:
    """Apply ``section.key=value`` (value parsed as YAML, as `dvc exp run -S` does)."""
    from ruamel.yaml import YAML

    for item in assignments:
        dotted, value = item.split("=", 1)
        section, key = dotted.split(".", 1)
        doc[section][key] = YAML(typ="safe").load(value)
    return doc


def cost(doc: dict, template_metrics: dict, sample_metrics: dict, train_metrics: dict, train_s: float) -> dict:
    """What one learned product cost: exposures, training tokens (prompt and answer, no padding) and seconds.

    Tokens are the trainer's count where it logged one, else the examples' tokens times the epochs."""
    products = sample_metrics["train_rows"]
    epochs = doc["train"]["num_train_epochs"]
    tokens = train_metrics.get("train/trained_tokens") or template_metrics["train"]["tokens_total"] * epochs
    return {"trained_products": products, "exposures_per_product": doc["template"]["phrasings_per_product"] * epochs,
            "tokens_per_example": template_metrics["train"]["tokens_mean"], "training_tokens": round(tokens),
            "tokens_per_product": round(tokens / products), "train_s_per_product": round(train_s / products, 2)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", default=str(DEFAULT_RAW))
    ap.add_argument("-S", "--set", action="append", default=[], help="params override, e.g. train.num_train_epochs=20")
    ap.add_argument("--base-model", help="reuse a base_model output folder instead of materialising it")
    ap.add_argument("--keep", help="keep the scratch folder here")
    ap.add_argument("--skip-base", action="store_true",
                    help="do not evaluate the base model (recipe sweeps: its scores do not change with train params)")
    ap.add_argument("--skip-typed", action="store_true", help="do not ask the trained products as people type them")
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "recall.json"))
    ap.add_argument("--stages", choices=["all", "data", "model"], default="all",
                    help="data: the data stages and template only (into --keep); model: train and evaluate on the "
                         "data a `--stages data` run left in --keep (a GPU machine without the data stages' packages)")
    args = ap.parse_args(argv)

    from prodqa import params
    from stages import base_model, catalog, clean, evaluate, evaluate_typed, sample, template, train, unpack

    doc = override(params.read_yaml(ROOT / "params.yaml"), [f"data.raw={args.raw}", *args.set])
    work = Path(args.keep or tempfile.mkdtemp(prefix="prodqa-recall-"))
    work.mkdir(parents=True, exist_ok=True)
    prm = work / "params.yaml"
    prm.write_text(json.dumps(doc))  # JSON is YAML
    P = ["--params", str(prm)]
    d, m = work / "data", work / "metrics"
    times = {}

    def timed(name, fn, *a):
        start = time.perf_counter()
        fn([*P, *a])
        times[name] = round(time.perf_counter() - start, 1)

    base = args.base_model or str(work / "base")
    if args.stages != "model":
        timed("unpack", unpack.main, "--raw", args.raw, "--out", str(d / "unpack.parquet"), "--metrics", str(m / "unpack.json"))
        timed("clean", clean.main, "--src", str(d / "unpack.parquet"), "--out", str(d / "clean.parquet"), "--metrics", str(m / "clean.json"))
        timed("sample", sample.main, "--src", str(d / "clean.parquet"), "--out", str(d / "sample"), "--metrics", str(m / "sample.json"))
        if not args.base_model:
            timed("base_model", base_model.main, "--out", base, "--metrics", str(m / "base_model.json"))
        timed("template", template.main, "--src", str(d / "sample"), "--base", base, "--out", str(d / "template"),
              "--metrics", str(m / "template.json"))
        (work / "data_seconds.json").write_text(json.dumps(times))
    if args.stages == "data":
        return
    times = {**json.loads((work / "data_seconds.json").read_text()), **times}
    timed("train", train.main, "--base", base, "--data", str(d / "template"), "--adapter", str(work / "adapter"),
          "--merged", str(work / "merged"), "--checkpoints", str(work / "checkpoints"), "--metrics", str(m / "train"))
    models = {"base": base, "tuned": str(work / "merged")}
    if args.skip_base:
        del models["base"]
    for name, model in models.items():
        timed(f"evaluate_{name}", evaluate.main, "--model", model, "--reader", base, "--sample", str(d / "sample"),
              "--answers", str(d / "eval" / name), "--metrics", str(m / "eval" / name))

    if not args.skip_typed:
        timed("catalog", catalog.main, "--src", str(d / "clean.parquet"), "--out", str(d / "catalog.sqlite"),
              "--metrics", str(m / "catalog.json"))
        timed("evaluate_typed", evaluate_typed.main, "--model", models["tuned"], "--sample", str(d / "sample"),
              "--catalog", str(d / "catalog.sqlite"), "--answers", str(d / "eval" / "typed"), "--metrics", str(m / "eval" / "typed"))
    scores = {name: json.loads((m / "eval" / name / "metrics.json").read_text()) for name in models}
    trained = json.loads((m / "train" / "metrics.json").read_text())
    summary = {s: {"rougeL": {k: scores[k][s]["rougeL"] for k in scores}, "loss": {k: scores[k][s]["loss"] for k in scores},
                   "degenerate": {k: scores[k][s]["degenerate_answers"] for k in scores}} for s in ("seen", "unseen")}
    if "base" in scores:
        summary["seen"]["loss_drop"] = round(1 - scores["tuned"]["seen"]["loss"] / scores["base"]["seen"]["loss"], 4)
        summary["unseen"]["rougeL_ratio"] = round(scores["tuned"]["unseen"]["rougeL"] / max(scores["base"]["unseen"]["rougeL"], 1e-9), 3)
    summary["validation_loss"] = trained.get("eval", {}).get("loss")
    if not args.skip_typed:
        typed = json.loads((m / "eval" / "typed" / "metrics.json").read_text())
        summary["typed"] = {way: {k: v.get(k) for k in ("rougeL", "confidence", "from_memory", "ask_rougeL", "ask_from_memory", "ask_found", "asked_back")}
                            for way, v in typed.items()}
    summary["cost"] = cost(doc, json.loads((m / "template.json").read_text()), json.loads((m / "sample.json").read_text()),
                           trained, times["train"])
    recipe = {f"{section}.{key}": doc[section][key] for section, keys in RECIPE.items() for key in keys}
    result = {"raw": Path(args.raw).name, "overrides": args.set, "recipe": recipe, "summary": summary, "scores": scores,
              "train": {k: trained.get(k) for k in ("step", "eval", "train")}, "stage_seconds": times,
              "products": json.loads((m / "sample.json").read_text())}
    record(result, args.result)
    print(f"scratch folder: {work}")


if __name__ == "__main__":
    main()
