"""Benchmark: how recall holds as the catalog grows, what each learned product costs, and the knowledge stored.

    python -m benchmarks.capacity [--sizes 60 120 240 354] [-S train.num_train_epochs=2 ...]

For each catalog size N, trains the default recipe (params.yaml plus the ``-S`` overrides) on N real products
of ``../shared/real_dev/trn_dev.jsonl`` through ``benchmarks.recall`` (the pipeline's own stages), with the same
split fractions at every size (5% validation, 15% test: at 443 clean records the largest size is 354), and
records for each: seen ROUGE-L over up to 60 trained products (held-out phrasing), the validation loss,
training tokens, exposures and seconds per product, tokens/s, and the knowledge stored: the drop in the
trained descriptions' loss from the base model to the tuned one, summed over their tokens, in bits, per
trainable parameter (Allen-Zhu & Li measure ~2 bits/param at capacity).

Writes benchmarks/results/capacity.json and docs/capacity.png (``--result``, ``--plot``). The losses are computed
in ``precision: auto`` (bf16 where the CPU has it, else fp32). The real records are a development set: never a
dependency of the tests or of `make repro`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from benchmarks import record
from benchmarks.recall import DEFAULT_RAW, ROOT
from benchmarks.recall import main as recall

VAL_FRAC, TEST_FRAC = 0.05, 0.15
SEEN = 60  # trained products asked per size


def stored_bits(work: Path, params_file: Path) -> dict:
    """Base minus tuned loss of every trained description (teacher-forced, held-out phrasing), in bits."""
    import pyarrow.parquet as pq
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prodqa import params, precision, template
    from prodqa.evaluate import reference_loss
    from prodqa.template import questions

    tp = params.load(params.Template, params_file)
    train_p = params.load(params.Train, params_file)
    rows = pq.read_table(work / "data" / "sample" / "train.parquet", columns=["title", "content"]).to_pylist()
    examples = [template.answered(template.prompt(q, tp), r["content"]) for q, r in zip(questions(rows, tp, True), rows)]
    tokenizer = AutoTokenizer.from_pretrained(work / "merged")
    n_tokens = [len(template.render(ex, tokenizer)[1]) for ex in examples]
    losses = {}
    for name, folder in (("base", json.loads((work / "base_dir.json").read_text())), ("tuned", str(work / "merged"))):
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=precision.torch_dtype("auto")).to(precision.device()).eval()
        losses[name] = reference_loss(model, tokenizer, examples, tp.max_seq_len)
    nats = sum((b - t) * n for b, t, n in zip(losses["base"], losses["tuned"], n_tokens))
    if train_p.method == "full":
        trainable = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(work / "merged").parameters())
    else:
        from safetensors import safe_open

        with safe_open(str(work / "adapter" / "adapter_model.safetensors"), "pt") as f:
            trainable = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    bits = nats / math.log(2)
    return {"answer_tokens": sum(n_tokens), "loss_base": round(sum(losses["base"]) / len(rows), 4),
            "loss_tuned": round(sum(losses["tuned"]) / len(rows), 4), "bits_stored": round(bits),
            "trainable_params": trainable, "bits_per_param": round(bits / trainable, 6)}


def plot(points: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [p["cost"]["trained_products"] for p in points]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    ax[0].plot(n, [p["seen_rougeL"] for p in points], "o-")
    ax[0].set(xlabel="trained products (real records)", ylabel="seen ROUGE-L (held-out phrasing)", ylim=(0, 1.02),
              title="Recall as the catalog grows")
    ax[0].axhline(0.9, color="grey", lw=0.8, ls="--")
    ax[1].plot(n, [p["knowledge"]["bits_stored"] / 1e3 for p in points], "o-", label="kbits stored")
    ax[1].set(xlabel="trained products (real records)", ylabel="kbits (base − tuned loss × tokens)",
              title="Knowledge stored")
    for x, p in zip(n, points):
        ax[1].annotate(f"{p['knowledge']['bits_per_param']:.4f} b/param", (x, p["knowledge"]["bits_stored"] / 1e3),
                       fontsize=7, textcoords="offset points", xytext=(-20, 6))
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", default=str(DEFAULT_RAW))
    ap.add_argument("--sizes", type=int, nargs="+", default=[60, 120, 240, 354], help="trained products per run")
    ap.add_argument("-S", "--set", action="append", default=[], help="params override, e.g. train.num_train_epochs=2")
    ap.add_argument("--base-model", help="reuse a base_model output folder instead of materialising it per run")
    ap.add_argument("--work", default="/tmp/prodqa-capacity", help="scratch folders, one per size")
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "capacity.json"))
    ap.add_argument("--plot", default=str(ROOT / "docs" / "capacity.png"), help="the curve's image")
    ap.add_argument("--stages", choices=["all", "data", "model"], default="all",
                    help="as benchmarks.recall's: data here, model on a GPU machine (benchmarks/gpu/run.sh)")
    ap.add_argument("--skip-typed", action="store_true", help="do not ask the trained products as people type them")
    ap.add_argument("--reuse", action="append", default=[], metavar="SIZE=DIR",
                    help="take this size from a finished `benchmarks.recall --keep DIR` run (its own split fractions)")
    args = ap.parse_args(argv)

    reused = {int(k): Path(v) for k, v in (r.split("=", 1) for r in args.reuse)}
    # Sizes recorded by an earlier run stay in the curve unless measured again (a 354-product run takes an hour).
    earlier = json.loads(Path(args.result).read_text())["points"] if Path(args.result).exists() else []
    points = {p["size"]: p for p in earlier}
    for size in sorted({*args.sizes, *reused}):
        work = reused.get(size, Path(args.work) / str(size))
        overrides = [*args.set, f"sample.n_products={math.ceil(size / (1 - VAL_FRAC - TEST_FRAC))}",
                     f"sample.val_frac={VAL_FRAC}", f"sample.test_frac={TEST_FRAC}", f"evaluate.seen_examples={SEEN}",
                     "evaluate.unseen_examples=0"]
        result_file = work / "recall.json"
        if size in reused:
            overrides = json.loads(result_file.read_text())["overrides"]
        else:
            recall(["--raw", args.raw, "--keep", str(work), "--skip-base", "--result", str(result_file), "--stages", args.stages,
                    *(["--skip-typed"] if args.skip_typed else []),
                    *(["--base-model", args.base_model] if args.base_model else []),
                    *(a for o in overrides for a in ("-S", o))])
            if args.stages == "data":
                continue
        run = json.loads(result_file.read_text())
        if not (work / "base_dir.json").exists():
            (work / "base_dir.json").write_text(json.dumps(args.base_model or str(work / "base")))
        points[size] = {"size": size, "overrides": overrides, "recipe": run["recipe"],
                        "seen_rougeL": run["summary"]["seen"]["rougeL"]["tuned"],
                        "seen_examples": run["scores"]["tuned"]["seen"]["examples"],
                        "validation_loss": run["summary"]["validation_loss"], "cost": run["summary"]["cost"],
                        "tokens_per_s": run["train"]["train"].get("tokens_per_s"),
                        "stage_seconds": run["stage_seconds"], "knowledge": stored_bits(work, work / "params.yaml")}
        record({"points": [points[k] for k in sorted(points)]}, args.result, final=size == max(points))  # after every size
    if args.stages != "data":
        plot([points[k] for k in sorted(points)], Path(args.plot))


if __name__ == "__main__":
    main()
