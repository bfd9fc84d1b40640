"""Benchmark: batched generation of the evaluator against one-at-a-time generation, same prompts, same run.

    python -m benchmarks.generation [--model models/merged] [--prompts 16]

Target (issue 4): batched >= 3x the tokens/s of one-at-a-time on CPU.
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
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "generation.json"))
    args = ap.parse_args(argv)

    import pyarrow.parquet as pq
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prodqa import evaluate, params

    p, tp = params.load("evaluate", args.params), params.load("template", args.params)
    # A fixed answer length makes the two runs do the same work: no early stop at end-of-turn.
    p = p.model_copy(update={"repetition_penalty": 1.0})
    titles = pq.read_table(args.test, columns=["title"])["title"].to_pylist()[: args.prompts]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None  # every answer runs to max_new_tokens, in both modes
    ids = [evaluate.encode_prompt(x, tokenizer) for x in evaluate.prompts(titles, tp)]
    generated = len(ids) * p.max_new_tokens

    evaluate.generate(model, tokenizer, ids[:2], p, batch_size=2)  # warm-up
    start = time.perf_counter()
    evaluate.generate(model, tokenizer, ids, p, batch_size=p.batch_size)
    batched = generated / (time.perf_counter() - start)
    start = time.perf_counter()
    for one in ids:
        evaluate.generate(model, tokenizer, [one], p, batch_size=1)
    single = generated / (time.perf_counter() - start)
    result = {"prompts": len(ids), "max_new_tokens": p.max_new_tokens, "batch_size": p.batch_size,
              "batched_tokens_per_s": round(batched, 1), "one_at_a_time_tokens_per_s": round(single, 1),
              "speedup": round(batched / single, 2), "torch_threads": torch.get_num_threads()}
    record(result, args.result)


if __name__ == "__main__":
    main()
