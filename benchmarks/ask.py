"""Benchmark: decode tokens/s of `ask` on the q8_0 GGUF (llama.cpp) against the merged HF model, same question.

    python -m benchmarks.ask [--tokens 64]

Target (issue 5): GGUF >= 5x the HF model on CPU. Both decode greedily to a fixed length; prompt
processing is timed separately and left out of the decode rate.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks import record

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "What is Girls Ballet Tutu Neon Pink?"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default=str(ROOT / "models" / "gguf" / "model-q8_0.gguf"))
    ap.add_argument("--hf", default=str(ROOT / "models" / "merged"))
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "ask.json"))
    args = ap.parse_args(argv)

    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prodqa import generate, params, template

    tp = params.load(params.Template, args.params)
    msgs = template.prompt(QUESTION, tp)
    tokenizer = AutoTokenizer.from_pretrained(args.hf)
    prompt = list(tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False))

    model = AutoModelForCausalLM.from_pretrained(args.hf, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None  # decode exactly --tokens tokens
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        model.generate(input_ids=ids, max_new_tokens=2, do_sample=False)  # warm-up
        start = time.perf_counter()
        model.generate(input_ids=ids, max_new_tokens=1, do_sample=False)
        hf_prefill = time.perf_counter() - start
        start = time.perf_counter()
        model.generate(input_ids=ids, max_new_tokens=args.tokens, do_sample=False)
        hf_decode = (args.tokens - 1) / (time.perf_counter() - start - hf_prefill)

    llm = Llama(model_path=args.gguf, n_ctx=1024, n_threads=generate.threads(), verbose=False)
    llm.eval(prompt[:4])  # warm-up
    llm.reset()
    start = time.perf_counter()
    llm.eval(prompt)
    cpp_prefill = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.tokens):
        token = llm.sample(top_k=1, temp=0.0)
        llm.eval([token])
    cpp_decode = args.tokens / (time.perf_counter() - start)

    result = {"question": QUESTION, "decoded_tokens": args.tokens, "prompt_tokens": len(prompt),
              "gguf": Path(args.gguf).name, "gguf_decode_tokens_per_s": round(cpp_decode, 1),
              "hf_decode_tokens_per_s": round(hf_decode, 1), "speedup": round(cpp_decode / hf_decode, 2),
              "gguf_prefill_s": round(cpp_prefill, 3), "hf_prefill_s": round(hf_prefill, 3),
              "threads": generate.threads()}
    record(result, args.result)


if __name__ == "__main__":
    main()
