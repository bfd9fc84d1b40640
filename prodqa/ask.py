"""``python -m prodqa ask "What is Girls Ballet Tutu Neon Pink?"``: answer with the fine-tuned model, streaming.

By default the q8_0 GGUF from ``export_gguf`` runs in llama.cpp (fast on CPU); ``--hf`` uses the merged
transformers model instead. ``--grounded`` looks the product up in the cleaned catalog (exact, then fuzzy
title match) and puts its stored description into the prompt as context.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterator

from .files import DataError
from .template import prompt

# Where the pipeline writes what ask reads (outs of dvc.yaml; tests/test_config.py keeps them in step).
GGUF = "models/gguf/model-q8_0.gguf"
MERGED = "models/merged"
CATALOG = "data/clean/products.parquet"
MAX_QUESTION_CHARS = 1000
FUZZY_MIN_SCORE = 70  # token-set similarity of title and question; unrelated titles score ~35-45


def check_question(question: str) -> tuple[str, str | None]:
    """The question to ask and a note for the user, or DataError for an empty one."""
    question = " ".join(question.split())
    if not question:
        raise DataError("the question is empty: ask about a product, e.g. \"What is Girls Ballet Tutu Neon Pink?\"")
    if len(question) > MAX_QUESTION_CHARS:
        return question[:MAX_QUESTION_CHARS], f"note: question truncated to its first {MAX_QUESTION_CHARS} characters"
    return question, None


def find_product(question: str, catalog: str) -> tuple[dict | None, float]:
    """The catalog product whose title best matches the question: exact title inside it first, then fuzzy."""
    import pyarrow.parquet as pq
    from rapidfuzz import fuzz, process, utils

    if not Path(catalog).exists():
        raise DataError(f"{catalog}: no cleaned catalog; run `make repro` (or `dvc repro clean`) first")
    table = pq.read_table(catalog, columns=["title", "content"])
    titles = table["title"].to_pylist()
    q = question.lower()
    exact = [i for i, t in enumerate(titles) if t.lower() in q]
    if exact:
        best = max(exact, key=lambda i: len(titles[i]))  # the longest title contained in the question
        return {"title": titles[best], "content": table["content"][best].as_py()}, 100.0
    match = process.extractOne(question, titles, scorer=fuzz.token_set_ratio, processor=utils.default_process)
    if match is None or match[1] < FUZZY_MIN_SCORE:
        return None, match[1] if match else 0.0
    return {"title": titles[match[2]], "content": table["content"][match[2]].as_py()}, match[1]


def stream_gguf(path: str, msgs, max_tokens: int, temperature: float, repeat_penalty: float) -> Iterator[str]:
    if not Path(path).exists():
        raise DataError(f"{path}: no GGUF model; run `make repro` (or `dvc repro export_gguf`) first, or use --hf")
    try:
        from llama_cpp import Llama
    except ImportError:
        raise DataError("llama-cpp-python is not installed (make setup installs it); or use --hf") from None
    llm = Llama(model_path=path, n_ctx=2048, verbose=False)
    kw = dict(max_tokens=max_tokens, temperature=temperature, repeat_penalty=repeat_penalty, stream=True)
    if isinstance(msgs, str):  # template.format alpaca: plain text, as trained
        for chunk in llm.create_completion(msgs, **kw):
            yield chunk["choices"][0]["text"]
        return
    for chunk in llm.create_chat_completion(msgs, **kw):
        text = chunk["choices"][0]["delta"].get("content")
        if text:
            yield text


def stream_hf(path: str, msgs, max_tokens: int, temperature: float, repeat_penalty: float, dtype=None) -> Iterator[str]:
    if not (Path(path) / "config.json").exists():
        raise DataError(f"{path}: no trained model; run `make repro` (or `dvc repro train`) first")
    from threading import Thread

    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
    if isinstance(msgs, str):  # template.format alpaca: plain text, as trained
        inputs = tokenizer(msgs, add_special_tokens=False, return_tensors="pt")
    else:
        inputs = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    kw = dict(**inputs, max_new_tokens=max_tokens, do_sample=temperature > 0, repetition_penalty=repeat_penalty,
              streamer=streamer, pad_token_id=tokenizer.eos_token_id, **({"temperature": temperature} if temperature else {}))
    Thread(target=model.generate, kwargs=kw, daemon=True).start()
    yield from streamer


def main(argv=None) -> None:
    from . import params

    ap = argparse.ArgumentParser(prog="python -m prodqa ask", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("question")
    ap.add_argument("--hf", action="store_true", help="use the merged transformers model instead of the GGUF")
    ap.add_argument("--model", help=f"GGUF file (default {GGUF}) or, with --hf, model folder (default {MERGED})")
    ap.add_argument("--grounded", action="store_true", help="put the catalog's description of the product in the prompt")
    ap.add_argument("--catalog", default=CATALOG)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--max-tokens", type=int)
    args = ap.parse_args(argv)

    tp = params.load("template", args.params)
    gp = params.load("generate", args.params)
    question, note = check_question(args.question)
    if note:
        print(note, file=sys.stderr)
    context = None
    if args.grounded:
        context, score = find_product(question, args.catalog)
        print(f"grounded on: {context['title']} (match {score:.0f})" if context else
              f"no product in the catalog matched (best score {score:.0f} < {FUZZY_MIN_SCORE}); answering ungrounded",
              file=sys.stderr)
    model = args.model or (MERGED if args.hf else GGUF)
    decoding = (prompt(question, tp, context), args.max_tokens or gp.max_new_tokens, gp.temperature, gp.repetition_penalty)
    if args.hf:
        from . import precision

        pieces = stream_hf(model, *decoding, dtype=precision.torch_dtype(gp.precision))
    else:
        pieces = stream_gguf(model, *decoding)
    for piece in pieces:
        print(piece, end="", flush=True)
    print()
