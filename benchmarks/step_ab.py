"""Benchmark: the same training steps under two settings, paired batch by batch in one process.

    python -m benchmarks.step_ab --a train.lora_first_layer=0 --b train.lora_first_layer=20 \
        [--steps 24] [--precision fp32] [--data <a recall run's data/template>] [--name NAME]

Each arm is the ``train`` stage's own trainer built from ``params.yaml`` plus its overrides (``train.<key>=value``,
or ``trainer.answer_logits_only=false`` for the trainer's LM head on every position). Every batch runs a whole
step (forward, backward, optimizer step) in both arms, the order alternating: both see the same example
lengths and the same moments of the machine, whose pace on 2 cores swings by tens of percent within minutes
(one recipe's whole runs took 300-860 s). Time on the training set's real tokens; writes
benchmarks/results/step_ab_<name>.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks import record

ROOT = Path(__file__).resolve().parents[1]


def arm_settings(assignments: list[str]) -> tuple[dict, dict]:
    """(train param overrides, trainer attributes) from ``train.key=value`` / ``trainer.attr=value``."""
    from ruamel.yaml import YAML

    params, attrs = {}, {}
    for item in assignments:
        dotted, value = item.split("=", 1)
        section, key = dotted.split(".", 1)
        {"train": params, "trainer": attrs}[section][key] = YAML(typ="safe").load(value)
    return params, attrs


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", nargs="*", default=[], help="arm A's settings (none: params.yaml as it is)")
    ap.add_argument("--b", nargs="+", required=True, help="arm B's settings")
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--precision", default=None)
    ap.add_argument("--model", default=str(ROOT / "models" / "base"))
    ap.add_argument("--data", default=str(ROOT / "data" / "template"))
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--name", help="result file step_ab_<name>.json (default: arm B's keys)")
    args = ap.parse_args(argv)

    from prodqa import params, precision, train

    base = params.load(params.Train, args.params)
    base = base.model_copy(update={"precision": args.precision or base.precision, "warmup_steps": 0})
    tp = params.load(params.Template, args.params)
    arms = {"a": arm_settings(args.a), "b": arm_settings(args.b)}
    spent = {k: 0.0 for k in arms}
    tokens = 0
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for k, (overrides, attrs) in arms.items():
            p = params.parse("train", {**base.model_dump(), **overrides})
            trainer, _, _ = train.build_trainer(train.Paths.of(base=args.model, data=args.data, checkpoints=tmp,
                                                               adapter=tmp, merged=tmp, metrics=tmp), p, tp)
            for attr, value in attrs.items():
                setattr(trainer, attr, value)
            trainer.create_optimizer_and_scheduler(num_training_steps=args.warmup + args.steps)
            trainer.model.train()
            trainers[k] = trainer
        for i, batch in enumerate(trainers["a"].get_train_dataloader()):
            if i == args.warmup + args.steps:
                break
            for k in ("a", "b") if i % 2 else ("b", "a"):
                trainer, start = trainers[k], time.perf_counter()
                with trainer.compute_loss_context_manager():
                    loss = trainer.compute_loss(trainer.model, dict(batch))
                loss.backward()
                trainer.optimizer.step()
                trainer.model.zero_grad()
                if i >= args.warmup:
                    spent[k] += time.perf_counter() - start
            if i >= args.warmup:
                tokens += int(batch["attention_mask"].sum())
    rate = {k: round(tokens / s, 1) for k, s in spent.items()}
    name = args.name or "_".join(a.split("=")[0].split(".")[1] for a in args.b)
    record({"a": args.a, "b": args.b, "precision": precision.resolve(base.precision, False),
            "steps": args.steps, "tokens": tokens, "seconds": {k: round(s, 2) for k, s in spent.items()},
            "tokens_per_s": rate, "b_over_a": round(rate["b"] / rate["a"], 3), "data": args.data},
           str(ROOT / "benchmarks" / "results" / f"step_ab_{name}.json"))


if __name__ == "__main__":
    main()
