"""``python -m prodqa ask "What is Girls Ballet Tutu Neon Pink?"``: answer with the fine-tuned model, streaming.

By default the q8_0 GGUF from ``export_gguf`` runs in llama.cpp (fast on CPU); ``--hf`` uses the merged
transformers model instead. ``--grounded`` looks the product up in the cleaned catalog (exact, then fuzzy
title match) and puts its stored description into the prompt as context.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterator

from . import precision
from .catalog import MIN_SCORE, TitleIndex
from .files import DataError
from .params import Generate
from .template import prompt

# Where the pipeline writes what ask reads (outs of dvc.yaml; tests/test_config.py keeps them in step).
GGUF = "models/gguf/model-q8_0.gguf"
BASE_GGUF = "models/gguf/base-q8_0.gguf"  # export_gguf.BASE_FILE: the base model, for side-by-side answers
MERGED = "models/merged"
CATALOG = "data/clean/products.parquet"
MAX_QUESTION_CHARS = 1000


def check_question(question: str) -> tuple[str, str | None]:
    """The question to ask and a note for the user, or DataError for an empty one."""
    question = " ".join(question.split())
    if not question:
        raise DataError("the question is empty: ask about a product, e.g. \"What is Girls Ballet Tutu Neon Pink?\"")
    if len(question) > MAX_QUESTION_CHARS:
        return question[:MAX_QUESTION_CHARS], f"note: question truncated to its first {MAX_QUESTION_CHARS} characters"
    return question, None


def load_gguf(path: str | Path, n_ctx: int = 4096):
    """A llama.cpp model (llama-cpp-python), or DataError saying what builds it."""
    if not Path(path).exists():
        raise DataError(f"{path}: no GGUF model; run `make repro` (or `dvc repro export_gguf`) first, or use --hf")
    try:
        from llama_cpp import Llama
    except ImportError:
        raise DataError("llama-cpp-python is not installed (make setup installs it); or use --hf") from None
    threads = len(os.sched_getaffinity(0))  # llama-cpp-python's default is half the cores
    return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False)


def stream_gguf(llm, msgs, gp: Generate, max_tokens: int | None = None) -> Iterator[str]:
    """The answer to a prompt of ``template.prompt`` (messages, or Alpaca text), piece by piece."""
    kw = dict(max_tokens=max_tokens or gp.max_new_tokens, temperature=gp.temperature, top_p=gp.top_p,
              repeat_penalty=gp.repetition_penalty, stream=True)
    try:
        if isinstance(msgs, str):  # template.format alpaca: plain text, as trained
            for chunk in llm.create_completion(msgs, **kw):
                yield chunk["choices"][0]["text"]
            return
        for chunk in llm.create_chat_completion(msgs, **kw):
            text = chunk["choices"][0]["delta"].get("content")
            if text:
                yield text
    except ValueError as err:  # llama-cpp-python: "Requested tokens (…) exceed context window of …"
        raise DataError(f"the prompt does not fit the model: {err}") from None


def stream_hf(path: str, msgs, gp: Generate, max_tokens: int | None = None) -> Iterator[str]:
    if not (Path(path) / "config.json").exists():
        raise DataError(f"{path}: no trained model; run `make repro` (or `dvc repro train`) first")
    from threading import Thread

    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=precision.torch_dtype(gp.precision)).eval()
    if isinstance(msgs, str):  # template.format alpaca: plain text, as trained
        inputs = tokenizer(msgs, add_special_tokens=False, return_tensors="pt")
    else:
        inputs = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    kw = dict(**inputs, max_new_tokens=max_tokens or gp.max_new_tokens, do_sample=gp.temperature > 0,
              temperature=gp.temperature or None, top_p=gp.top_p, repetition_penalty=gp.repetition_penalty,
              streamer=streamer, pad_token_id=tokenizer.eos_token_id)
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
        match, score = TitleIndex.load(args.catalog).find(question)
        context = match.context() if match else None
        print(f"grounded on: {match.title} (match {score:.0f})" if match else
              f"no product in the catalog matched (best score {score:.0f} < {MIN_SCORE}); answering ungrounded",
              file=sys.stderr)
    model = args.model or (MERGED if args.hf else GGUF)
    msgs = prompt(question, tp, context)
    if args.hf:
        pieces = stream_hf(model, msgs, gp, args.max_tokens)
    else:
        pieces = stream_gguf(load_gguf(model), msgs, gp, args.max_tokens)
    for piece in pieces:
        print(piece, end="", flush=True)
    print()
