"""Benchmark: the ``train`` stage's tokens/s in fp32 and in the chosen precision, on the same batches.

    python -m benchmarks.train_throughput [--steps 8] [--warmup 2] [--precision bf16]

All runs use the same base model (models/base), templated data (data/template) and LoRA config: the
trainer this project shipped before (fp32, 4 packed rows a step, no compile), today's settings in fp32, and
today's settings in the chosen precision. Also records the
CPU flags, the machine's measured bf16/fp32 matrix-product peaks, and the share of the bf16 peak the
trainer reaches (FLOPs per token: 2 x parameters forward, 4 x backward for a frozen base, LoRA's own
products ignored, attention's quadratic term included).
Target (issue 11): on a CPU with AMX-BF16, >= 3x the fp32 trainer as it was; on a CPU without bf16, auto == fp32.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks import record

ROOT = Path(__file__).resolve().parents[1]


def matmul_peak(dtype, n: int = 1024, reps: int = 20) -> float:
    """GFLOP/s of an n^3 matrix product in ``dtype`` on this machine."""
    import torch

    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def trainer_tokens_per_s(args, p, tp) -> tuple[float, int, str]:
    """Real (non-padding) tokens/s of the train stage's own trainer over the timed steps."""
    from transformers import TrainerCallback

    from prodqa import train

    class Clock(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter())

    clock = Clock()
    total = args.steps + args.warmup
    with tempfile.TemporaryDirectory() as tmp:
        trainer, _, _ = train.build_trainer(train.Paths.of(base=args.model, data=args.data, checkpoints=tmp, adapter=tmp, merged=tmp,
                                                       metrics=tmp), p, tp, [clock])
        dtype = str(next(trainer.model.parameters()).dtype).removeprefix("torch.")
        trainer.train()
    seen = [log["num_tokens"] for log in trainer.state.log_history if "num_tokens" in log and "loss" in log]
    tps = (seen[total - 1] - seen[args.warmup - 1]) / (clock.times[total - 1] - clock.times[args.warmup - 1])
    return tps, sum(p.numel() for p in trainer.model.parameters() if not p.requires_grad), dtype


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8, help="timed steps (after --warmup)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--precision", default=None, help="the configuration compared with fp32 (default: train.precision)")
    ap.add_argument("--model", default=str(ROOT / "models" / "base"))
    ap.add_argument("--data", default=str(ROOT / "data" / "template"))
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "train_throughput.json"))
    args = ap.parse_args(argv)

    import torch

    from prodqa import params, precision

    p = params.load(params.Train, args.params).model_copy(update={
        "max_steps": args.steps + args.warmup, "eval_steps": 10**6, "save_steps": 10**6, "logging_steps": 1,
        "warmup_steps": 0})
    tp = params.load(params.Template, args.params)
    chosen = args.precision or p.precision
    resolved = precision.resolve(chosen, torch.cuda.is_available())
    # The same data under three trainers: the one this project shipped before (fp32, 4 packed rows per step,
    # eager), today's settings in fp32, and today's settings in the chosen precision.
    configs = {"before_fp32_batch4_eager": {"precision": "fp32", "per_device_train_batch_size": 4,
                                                  "torch_compile": False},
               "fp32": {"precision": "fp32"}, chosen: {"precision": chosen}}
    tps, dtypes = {}, {}
    for name, update in configs.items():
        tps[name], frozen, dtypes[name] = trainer_tokens_per_s(args, p.model_copy(update=update), tp)
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(args.model)
    # 6 FLOPs per frozen parameter per token (forward 2, backward through activations 2, LoRA skips weight
    # grads: 2 more counted for the adapters' small share), plus attention: 12 * layers * hidden * seq/2.
    flops_per_token = 6 * frozen + 12 * cfg.num_hidden_layers * cfg.hidden_size * tp.max_seq_len / 2
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    result = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "per_device_train_batch_size": p.per_device_train_batch_size,
        "torch_compile": p.torch_compile,
        "max_seq_len": tp.max_seq_len,
        "lora_r": p.lora_r,
        "timed_steps": args.steps,
        "tokens_per_s": {k: round(v, 1) for k, v in tps.items()},
        "base_dtype": dtypes,
        "chosen": {"requested": chosen, "resolved": resolved},
        "ratio_vs_fp32_same_settings": round(tps[chosen] / tps["fp32"], 3),
        "ratio_vs_before": round(tps[chosen] / tps["before_fp32_batch4_eager"], 3),
        "matmul_peak_gflops": {k: round(v, 1) for k, v in peaks.items()},
        "achieved_gflops": round(tps[chosen] * flops_per_token / 1e9, 1),
        "share_of_bf16_peak": round(tps[chosen] * flops_per_token / 1e9 / peaks["bf16"], 3),
    }
    record(result, args.result)


if __name__ == "__main__":
    main()
