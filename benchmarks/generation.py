"""Benchmark: the evaluator's batched generation in fp32 and in the chosen precision, and one at a time.

    python -m benchmarks.generation [--model models/merged] [--prompts 40] [--max-new-tokens 64] [--result …]

Same prompts, same fixed answer length (end-of-turn disabled) in every mode, in one run.
Targets: batched >= 3x one-at-a-time (issue 4); on a CPU with AMX-BF16, batched bf16 >= 2x batched fp32 (issue 11),
measured as the evaluator runs it (prodqa.generate.generate: eager, dynamic cache). The compiled decode step
measured before is gone from the code (its 15-40 s compile made evaluations slower; docs/benchmarks.md).
Also batched fp32 with transformers' own ``sdpa`` against the CPU default ``sdpa_gqa`` (issue 22), same tokens asserted.
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

    from prodqa import generate, params, precision, template

    p, tp = params.load(params.Evaluate, args.params), params.load(params.Template, args.params)
    gp = params.load(params.Generate, args.params).model_copy(update={"repetition_penalty": 1.0,
                                                                 "max_new_tokens": args.max_new_tokens})
    rows = pq.read_table(args.test, columns=["title"]).slice(0, args.prompts).to_pylist()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    ids = [template.encode(template.prompt(q, tp), tokenizer) for q in template.questions(rows, tp, seen=False)]
    chosen = precision.resolve(gp.precision, torch.cuda.is_available())

    def rate(dtype, prompts, batch_size, attention=None) -> tuple[float, list]:
        """Generated tokens/s once warm, and the answers."""
        model = AutoModelForCausalLM.from_pretrained(
            args.model, dtype=dtype, attn_implementation=attention or generate.attention(precision.device())).eval()
        model.generation_config.eos_token_id = None  # every answer runs to max_new_tokens, in every mode
        generate.generate(model, tokenizer, prompts[:2], gp, batch_size=2)  # warm-up
        start = time.perf_counter()
        answers = generate.generate(model, tokenizer, prompts, gp, batch_size=batch_size)
        return len(prompts) * gp.max_new_tokens / (time.perf_counter() - start), answers

    fp32, gqa_answers = rate(torch.float32, ids, p.batch_size)
    fp32_sdpa, sdpa_answers = rate(torch.float32, ids, p.batch_size, attention="sdpa")
    best = fp32 if chosen == "fp32" else rate(precision.dtype(chosen), ids, p.batch_size)[0]  # fp32: measured above
    single = rate(precision.dtype(chosen), ids[: args.single], 1)[0]
    result = {"prompts": len(ids), "max_new_tokens": gp.max_new_tokens, "batch_size": p.batch_size, "chosen": chosen,
              "attention": generate.attention(precision.device()),
              "batched_fp32_tokens_per_s": round(fp32, 1), f"batched_{chosen}_tokens_per_s": round(best, 1),
              f"one_at_a_time_{chosen}_tokens_per_s": round(single, 1),
              "precision_speedup": round(best / fp32, 2),
              "batching_speedup": round(best / single, 2), "torch_threads": torch.get_num_threads(),
              "batched_fp32_plain_sdpa_tokens_per_s": round(fp32_sdpa, 1),
              "grouped_attention_speedup": round(fp32 / fp32_sdpa, 2),
              "grouped_attention_same_answers": [a.text for a in gqa_answers] == [a.text for a in sdpa_answers]}
    record(result, args.result)


if __name__ == "__main__":
    main()
