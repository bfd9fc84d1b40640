"""Benchmark: ``train.attention`` sdpa against eager, interleaved in one run of the ``train`` stage's trainer.

    python -m benchmarks.attention_ab [--steps 120] [--block 1] [--precision bf16]

A 2-core machine of this project's kind changes pace by tens of percent within minutes (whole training runs
logged 69-186 tokens/s for one recipe), so two runs one after the other do not compare two settings. Here one
trainer switches the attention kernel every ``--block`` steps (``set_attn_implementation``) and each kernel's
real (non-padding) tokens are divided by its own step time: both see the same moments of the machine and the
same mix of example lengths. Writes benchmarks/results/attention_ab.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks import record
from benchmarks.train_throughput import cpu_flags

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ("sdpa", "eager")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--block", type=int, default=1, help="steps in a row with one kernel")
    ap.add_argument("--precision", default=None)
    ap.add_argument("--model", default=str(ROOT / "models" / "base"))
    ap.add_argument("--data", default=str(ROOT / "data" / "template"))
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "attention_ab.json"))
    args = ap.parse_args(argv)

    from transformers import TrainerCallback

    from prodqa import params, precision, train

    p = params.load(params.Train, args.params)
    p = p.model_copy(update={"max_steps": args.warmup + args.steps, "eval_steps": 10**6, "save_steps": 10**6,
                             "warmup_steps": 0, "precision": args.precision or p.precision})
    tp = params.load(params.Template, args.params)
    spent = {k: {"s": 0.0, "tokens": 0, "steps": 0} for k in KERNELS}

    class Switch(TrainerCallback):
        kernel, start, tokens = KERNELS[0], 0.0, 0

        def on_step_begin(self, a, state, control, model=None, **kw):
            self.kernel = KERNELS[(state.global_step // args.block) % 2]
            model.set_attn_implementation(self.kernel)
            self.start, self.tokens = time.perf_counter(), trainer.trained_tokens

        def on_step_end(self, a, state, control, **kw):
            if state.global_step > args.warmup:
                arm = spent[self.kernel]
                arm["s"] += time.perf_counter() - self.start
                arm["tokens"] += trainer.trained_tokens - self.tokens
                arm["steps"] += 1

    with tempfile.TemporaryDirectory() as tmp:
        trainer, _, _ = train.build_trainer(train.Paths.of(base=args.model, data=args.data, checkpoints=tmp, adapter=tmp,
                                                           merged=tmp, metrics=tmp), p, tp, [Switch()])
        trainer.train()
    rate = {k: round(v["tokens"] / v["s"], 1) for k, v in spent.items()}
    record({"cpu_flags": cpu_flags(), "precision": precision.resolve(p.precision, False), "block": args.block,
            "steps": spent, "tokens_per_s": rate, "eager_over_sdpa": round(rate["eager"] / rate["sdpa"], 3),
            "data": args.data}, args.result)


if __name__ == "__main__":
    main()
