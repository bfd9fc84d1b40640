"""``python -m prodqa ask "Who wrote Blue Lightning?"``: the question asked, answered, saying where it comes from.

The product is looked up in the catalog first (``data/catalog/catalog.sqlite``), and the fine-tuned model
recites its description closed-book, asked by the catalog's spelling of its title, however the question typed
it. Once the recitation's first tokens are known (``generate.CONFIDENCE_TOKENS``) so is its confidence, and
``prodqa.route`` decides: at or above ``generate.min_confidence``, and unless it opens as another trained
product's description (``prodqa.learned``: a series' sibling), **from memory**; else **from the catalog**'s stored
description; a product in neither gets **not in the catalog** and no invented description. A question that asks
for the description ("What is X?") gets that description; any other ("Who wrote X?") a few words of it chosen by
the reader (recite, then read: prodqa.read, the base model), "Yes."/"No.", or "The description does not say.",
with the description it was read from under it. A question that fits several catalog products as well (a name
typed in part that begins several titles) is answered with the question back: which one? The source and the
confidence are printed first, and the description read from last (to stderr).

``--memory`` always answers closed-book and ``--grounded`` always reads the catalog's description, whatever the
question (for comparisons: the page's panels). By default the q8_0 GGUF runs in llama.cpp; ``--hf`` uses the
merged transformers model instead.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from . import read as read_
from . import route as route_
from .catalog import ASK_BACK_SCORE, MIN_SCORE, Catalog, Match
from .files import DataError
from .generate import CONFIDENCE_TOKENS, Stream, load_gguf, load_hf, stream_gguf, stream_hf
from .learned import Learned
from .params import Generate, Template
from .template import prompt

# Where the pipeline writes what ask reads (outs of dvc.yaml; tests/test_config.py keeps them in step).
GGUF = "models/gguf/model-q8_0.gguf"
BASE_GGUF = "models/gguf/base-q8_0.gguf"  # export_gguf.BASE_FILE: the base model, the reader (prodqa.read)
MERGED = "models/merged"
BASE = "models/base"  # the base model's folder: the reader with --hf (prodqa.read)
CATALOG = "data/catalog/catalog.sqlite"
TRAINED = "data/sample/train.parquet"  # the trained products: whose description an answer recalls (prodqa.learned)
MAX_QUESTION_CHARS = 1000
DONT_KNOW = "I don't know this product: I did not learn it, and the catalog has no product by that name."


def check_question(question: str) -> tuple[str, str | None]:
    """The question to ask and a note for the user, or DataError for an empty one."""
    question = " ".join(question.split())
    if not question:
        raise DataError("the question is empty: ask about a product, e.g. \"What is Girls Ballet Tutu Neon Pink?\"")
    if len(question) > MAX_QUESTION_CHARS:
        return question[:MAX_QUESTION_CHARS], f"note: question truncated to its first {MAX_QUESTION_CHARS} characters"
    return question, None


Reader = Callable[[str, str, str], str]  # (question, title, description) -> the short answer read from it


@dataclass
class Routed:
    """Where an answer comes from, and the answer, piece by piece; then its evidence (the recalled or catalog
    description it was read from; None when the answer is that description, or there is none)."""

    source: str  # route.MEMORY, CATALOG, UNKNOWN or AMBIGUOUS
    label: str  # what the user is told: "from memory: <title> (confidence 0.99)", "from the catalog: <title> …"
    pieces: Iterator[str]
    evidence: str | None = None


def head(stream: Stream) -> list[str]:
    """The pieces of ``stream`` up to the point its confidence is known (or the whole answer, if shorter)."""
    pieces = []
    for piece in stream:
        pieces.append(piece)
        if stream.scored >= CONFIDENCE_TOKENS:
            break
    return pieces


def named(question: str, title: str | None, tp: Template) -> str:
    """The question the fine-tuned model recites a product's description for, closed-book: about the product the
    catalog found, by its ``title`` as the catalog spells it, in the first of ``template.questions``; the question
    as asked when the catalog found none (``title`` None). The model learned each product under its catalog
    title: asked in lower case, with a typo or with the first words only, it recalls far less (docs/recall.md),
    and the lookup reads those the way people type them."""
    return tp.questions[0].format(title=title) if title is not None else question


def as_asked(question: str, title: str, catalog: Catalog, tp: Template) -> tuple[str | None, str, bool, bool]:
    """What ``route`` does with a question meant for the product ``title``, for evaluation: (the closed-book
    question it puts to the model, or None when it asks back without listing the product; its answer then;
    whether it asked back; whether the catalog found or listed the product). Asked back, the user picks theirs."""
    match, _ = catalog.find(question)
    if match is not None and match.asks_back:
        listed = title in {match.title, *match.others}
        return (named(question, title, tp) if listed else None), which(match), True, listed
    return named(question, match and match.title, tp), "", False, match is not None and match.title == title


def which(match: Match) -> str:
    """The answer to a question that is asked back: it names several products as well as one (a shared beginning),
    or one product too loosely to be sure (``Match.unsure``)."""
    if match.unsure:
        return f"Do you mean {match.title}? Ask again with its name."
    return f"Several products go by that name: {'; '.join([match.title, *match.others])}. Which one do you mean?"


def asked_back(match: Match, score: float) -> str:
    """The label of a question asked back."""
    if match.unsure:
        return f"not sure which product: did you mean {match.title}? (match {score:.0f} < {MIN_SCORE})"
    return f"several products match: which one? ({1 + len(match.others)} listed)"


def route(question: str, tp: Template, gp: Generate, answer: Callable[[object], Stream], read: Reader,
          catalog: Catalog | None, learned: Learned | None = None) -> Routed:
    """The answer to ``question`` and where it comes from (``prodqa.route`` decides both): ask which product is
    meant when the question fits several as well (before any answer: the model would pick one, or blend their
    descriptions); else recite the product's description closed-book and, by its confidence, answer from that
    recitation (memory), from the catalog's description, or say the product is unknown. An overview question gets
    the description itself; any other question the reader's short answer from it.

    ``answer(prompt)`` streams the fine-tuned model's answer to a prompt of ``template.prompt``; ``read(question,
    title, description)`` is the reader's answer (prodqa.read). The closed-book question names the product as the
    catalog does (:func:`named`), so the label names it too.
    """
    match, score = catalog.find(question) if catalog is not None else (None, 0.0)
    if match is not None and match.asks_back:
        return Routed(route_.AMBIGUOUS, asked_back(match, score), iter([which(match)]))
    title = match and match.title
    overview = route_.is_overview(question, title)
    closed = answer(prompt(named(question, title, tp), tp))
    first = head(closed)
    another = learned.another(title, "".join(first)) if learned is not None else None
    source = route_.source(closed.confidence, gp, another, match is not None)
    if source == route_.MEMORY:
        about = f": {title}" if match is not None else ""
        label = f"from memory{about} (confidence {closed.confidence:.2f})"
        if overview:
            return Routed(source, label, itertools.chain(first, closed))
        recited = "".join(itertools.chain(first, closed)).strip()
        return Routed(source, label, iter([read(question, title or question, recited)]), recited)
    closed.close()
    why = route_.unsure(closed.confidence, gp, another)
    if source == route_.UNKNOWN:
        where = "no catalog index" if catalog is None else f"best match {score:.0f} < {ASK_BACK_SCORE}"
        return Routed(source, f"not in the catalog ({where}; {why})", iter([DONT_KNOW]))
    label = f"from the catalog: {match.title} (match {score:.0f}; {why})"
    if overview:
        return Routed(source, label, iter([match.content]))
    return Routed(source, label, iter([read(question, match.title, match.content)]), match.content)


def main(argv=None) -> None:
    from . import params

    ap = argparse.ArgumentParser(prog="python -m prodqa ask", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("question")
    ap.add_argument("--hf", action="store_true", help="use the merged transformers model instead of the GGUF")
    ap.add_argument("--model", help=f"GGUF file (default {GGUF}) or, with --hf, model folder (default {MERGED})")
    ap.add_argument("--reader", help=f"the model that reads short answers: GGUF file (default {BASE_GGUF}) or, with "
                                     f"--hf, model folder (default {BASE})")
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--memory", action="store_true", help="always answer closed-book (prints the confidence)")
    how.add_argument("--grounded", action="store_true", help="always answer from the catalog's description")
    ap.add_argument("--catalog", default=CATALOG, help=f"catalog index (default {CATALOG})")
    ap.add_argument("--trained", default=TRAINED, help=f"the trained products (default {TRAINED})")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--max-tokens", type=int)
    args = ap.parse_args(argv)

    tp = params.load(params.Template, args.params)
    gp = params.load(params.Generate, args.params)
    question, note = check_question(args.question)
    if note:
        print(note, file=sys.stderr)
    model = args.model or (MERGED if args.hf else GGUF)
    if args.hf:
        hf = load_hf(model, gp)
        answer = lambda p: stream_hf(*hf, p, gp, args.max_tokens)  # noqa: E731
    else:
        llm = load_gguf(model)
        answer = lambda p: stream_gguf(llm, p, gp, args.max_tokens)  # noqa: E731
    reader = functools.cache(lambda: read_.HFScorer(*load_hf(args.reader or BASE, gp)) if args.hf else
                             read_.load(args.reader or BASE_GGUF))  # loaded when a question needs it
    read = lambda q, title, description: read_.read(q, title, description, reader(), tp)  # noqa: E731
    if args.memory:
        stream = answer(prompt(question, tp))
        for piece in stream:
            print(piece, end="", flush=True)
        print(f"\n[from memory, confidence {stream.confidence:.2f}]", file=sys.stderr)
        return
    catalog = Catalog(args.catalog) if Path(args.catalog).exists() or args.grounded else None
    if args.grounded:
        match, score = catalog.find(question)
        if match is None:
            raise DataError(f"no product in the catalog matches the question (best match {score:.0f} < {ASK_BACK_SCORE})")
        grounded = (answer(route_.answer_prompt(question, match.title, match.content, tp))  # as the page's panel
                    if route_.is_overview(question, match.title)
                    else iter([read(question, match.title, match.content)]))
        routed = Routed(route_.CATALOG, f"from the catalog: {match.title} (match {score:.0f})", grounded, match.content)
    else:
        learned = Learned.load(args.trained) if Path(args.trained).exists() else None
        routed = route(question, tp, gp, answer, read, catalog, learned)
    print(f"[{routed.label}]", file=sys.stderr, flush=True)
    for piece in routed.pieces:
        print(piece, end="", flush=True)
    print()
    if routed.evidence is not None:  # the description the answer was read from, under it (stderr, as the label)
        print(f"[read from the {'recalled' if routed.source == route_.MEMORY else 'catalog'} description]\n"
              f"{routed.evidence}", file=sys.stderr)
