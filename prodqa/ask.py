"""``python -m prodqa ask "What is Girls Ballet Tutu Neon Pink?"``: answer with the fine-tuned model, streaming.

By default the q8_0 GGUF from ``export_gguf`` runs in llama.cpp (fast on CPU); ``--hf`` uses the merged
transformers model instead. ``--grounded`` looks the product up in the cleaned catalog (exact, then fuzzy
title match) and puts its stored description into the prompt as context.
"""

from __future__ import annotations

import argparse
import sys

from .catalog import MIN_SCORE, TitleIndex
from .files import DataError
from .generate import load_gguf, load_hf, stream_gguf, stream_hf
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

    tp = params.load(params.Template, args.params)
    gp = params.load(params.Generate, args.params)
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
        pieces = stream_hf(*load_hf(model, gp), msgs, gp, args.max_tokens)
    else:
        pieces = stream_gguf(load_gguf(model), msgs, gp, args.max_tokens)
    for piece in pieces:
        print(piece, end="", flush=True)
    print()
