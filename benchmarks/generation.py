"""Benchmark: the evaluator's batched generation in fp32 and in the chosen precision, and one at a time.

    python -m benchmarks.generation [--model models/merged] [--prompts 40] [--max-new-tokens 64]

Same prompts, same fixed answer length (end-of-turn disabled) in every mode, in one run.
Targets: batched >= 3x one-at-a-time (issue 4); on a CPU with AMX-BF16, batched bf16 >= 2x batched fp32 (issue 11),
measured as the evaluator runs it (eager, dynamic cache) and with ``evaluate.torch_compile`` (static cache,
compiled decode step; its one-off compile is reported apart).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks import record

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "merged"))
    ap.add_argument("--test", default=str(ROOT / "data" / "sample" / "test.parquet"))
    ap.add_argument("--prompts", type=int, default=40)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--single", type=int, default=8, help="prompts answered one at a time (it is slow)")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "generation.json"))
    args = ap.parse_args(argv)

    import pyarrow.parquet as pq
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prodqa import evaluate, params, precision, template

    p, tp = params.load("evaluate", args.params), params.load("template", args.params)
    gp = params.load("generate", args.params).model_copy(update={"repetition_penalty": 1.0,
                                                                 "max_new_tokens": args.max_new_tokens})
    rows = pq.read_table(args.test, columns=["title"]).slice(0, args.prompts).to_pylist()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    tokenizer.padding_side = "left"
    ids = [evaluate.encode_prompt(template.prompt(q, tp), tokenizer) for q in evaluate.questions(rows, tp, seen=False)]
    chosen = precision.resolve(gp.precision, torch.cuda.is_available())

    def rate(dtype, prompts, batch_size, compile=False) -> tuple[float, float]:
        """(tokens/s once warm, seconds of the first, warming call: the compile when compiled)."""
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).eval()
        model.generation_config.eos_token_id = None  # every answer runs to max_new_tokens, in every mode
        start = time.perf_counter()
        evaluate.generate(model, tokenizer, prompts if compile else prompts[:2], gp,  # warm-up (same shape)
                          batch_size=batch_size if compile else 2, compile=compile)
        warm_s = time.perf_counter() - start
        start = time.perf_counter()
        evaluate.generate(model, tokenizer, prompts, gp, batch_size=batch_size, compile=compile)
        return len(prompts) * gp.max_new_tokens / (time.perf_counter() - start), warm_s

    fp32, _ = rate(torch.float32, ids, p.batch_size)
    best, _ = rate(precision.dtype(chosen), ids, p.batch_size)
    compiled, compile_s = rate(precision.dtype(chosen), ids, p.batch_size, compile=True)
    single, _ = rate(precision.dtype(chosen), ids[: args.single], 1)
    result = {"prompts": len(ids), "max_new_tokens": gp.max_new_tokens, "batch_size": p.batch_size, "chosen": chosen,
              "batched_fp32_tokens_per_s": round(fp32, 1), f"batched_{chosen}_tokens_per_s": round(best, 1),
              f"batched_{chosen}_compiled_tokens_per_s": round(compiled, 1),
              "first_compiled_call_s": round(compile_s, 1),
              f"one_at_a_time_{chosen}_tokens_per_s": round(single, 1),
              "precision_speedup": round(best / fp32, 2), "compiled_precision_speedup": round(compiled / fp32, 2),
              "batching_speedup": round(best / single, 2), "torch_threads": torch.get_num_threads()}
    record(result, args.result)


if __name__ == "__main__":
    main()
