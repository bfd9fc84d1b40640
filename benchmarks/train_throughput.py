"""Benchmark: the ``train`` stage's tokens/s against a bare PEFT forward+backward loop, same run.

    python -m benchmarks.train_throughput [--steps 8] [--warmup 2]

Both use the same base model (models/base), the same templated data (data/template), the same LoRA
config and the very same batches (taken from the trainer's own dataloader), so the ratio isolates the
trainer's overhead. Also reports the share of non-padding tokens in those batches.
Target (issue 3): ratio >= 0.8 on CPU; >= 95% non-padding tokens with packing.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from benchmarks import record

ROOT = Path(__file__).resolve().parents[1]


def tokens_in(batch) -> tuple[int, int]:
    """(real tokens, computed positions) of a collated batch."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum()), batch["input_ids"].numel()
    return batch["input_ids"].numel(), batch["input_ids"].numel()  # padding-free: every position is real


def bare_loop(model, batches, warmup: int, lr: float) -> float:
    """tokens/s of forward + backward + AdamW step on ``batches`` after ``warmup`` untimed steps."""
    import torch

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    tokens, start = 0, None
    for i, batch in enumerate(batches):
        if i == warmup:
            start, tokens = time.perf_counter(), 0
        loss = model(**{k: v for k, v in batch.items() if k != "completion_mask"}).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += tokens_in(batch)[0]
    return tokens / (time.perf_counter() - start)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8, help="timed steps (after --warmup)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--model", default=str(ROOT / "models" / "base"))
    ap.add_argument("--data", default=str(ROOT / "data" / "template"))
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "train_throughput.json"))
    args = ap.parse_args(argv)

    import torch
    from peft import get_peft_model
    from transformers import TrainerCallback

    from prodqa import params, train

    total = args.steps + args.warmup
    p = params.load("train", args.params).model_copy(update={
        "max_steps": total, "eval_steps": 10**6, "save_steps": 10**6, "logging_steps": 1, "warmup_steps": 0})
    tp = params.load("template", args.params)

    class Clock(TrainerCallback):
        times: list[float] = []

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter())

    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        trainer, _, backend = train.build_trainer(args.model, args.data, tmp, p, tp, [clock])
        batches = [b for _, b in zip(range(total), trainer.get_train_dataloader())]
        real, computed = map(sum, zip(*(tokens_in(b) for b in batches)))
        trainer.train()
    # TRL logs the cumulative number of real tokens at every step.
    seen = [log["num_tokens"] for log in trainer.state.log_history if "num_tokens" in log and "loss" in log]
    trainer_tps = (seen[total - 1] - seen[args.warmup - 1]) / (clock.times[total - 1] - clock.times[args.warmup - 1])

    model, _, lora = train._load_peft(args.model, p, torch.cuda.is_available())
    model = get_peft_model(model, lora)
    bare_tps = bare_loop(model, batches, args.warmup, p.lr)
    result = {
        "backend": backend,
        "batch_size": p.batch_size,
        "max_seq_len": tp.max_seq_len,
        "packing": p.packing,
        "timed_steps": args.steps,
        "trainer_tokens_per_s": round(trainer_tps, 1),
        "bare_peft_tokens_per_s": round(bare_tps, 1),
        "ratio": round(trainer_tps / bare_tps, 3),
        "non_padding_share": round(real / computed, 4),
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    record(result, args.result)


if __name__ == "__main__":
    main()
