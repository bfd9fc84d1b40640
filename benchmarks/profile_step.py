"""Profile: where one step of the ``train`` stage's trainer spends its time (torch.profiler, CPU).

    python -m benchmarks.profile_step [--precision bf16] [--steps 3]

Builds the stage's own trainer on models/base and data/template, runs the warm-up steps, then profiles
``--steps`` optimizer steps and prints the operators that took the most self time. No result file: this is
for finding what to speed up, and docs/benchmarks.md quotes what it showed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--precision", default=None)
    ap.add_argument("--rows", type=int, default=25)
    ap.add_argument("--model", default=str(ROOT / "models" / "base"))
    ap.add_argument("--data", default=str(ROOT / "data" / "template"))
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    args = ap.parse_args(argv)

    from torch.profiler import ProfilerActivity, profile, schedule
    from transformers import TrainerCallback

    from prodqa import params, train

    p = params.load(params.Train, args.params)
    p = p.model_copy(update={"max_steps": args.warmup + args.steps, "eval_steps": 10**6, "save_steps": 10**6,
                             "warmup_steps": 0, "precision": args.precision or p.precision})
    tp = params.load(params.Template, args.params)
    prof = profile(activities=[ProfilerActivity.CPU], schedule=schedule(wait=0, warmup=args.warmup, active=args.steps, repeat=1))

    class Step(TrainerCallback):
        def on_step_end(self, *a, **k):
            prof.step()

    with tempfile.TemporaryDirectory() as tmp, prof:
        trainer, _, _ = train.build_trainer(train.Paths.of(base=args.model, data=args.data, checkpoints=tmp, adapter=tmp, merged=tmp,
                                                       metrics=tmp), p, tp, [Step()])
        trainer.train()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
