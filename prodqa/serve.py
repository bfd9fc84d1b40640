"""``make serve`` / ``python -m prodqa serve``: ask about a product and compare three answers side by side.

A local Gradio app (bound to 127.0.0.1 unless ``--host`` says otherwise):

- **Ask**: one question box with product-title suggestions from the catalog, **the answer**, routed as
  ``ask`` routes it (``prodqa.route``: from memory when the fine-tuned model is confident, else from the catalog,
  else "not in the catalog"; a short answer read from the description unless the question asks for the
  description), the description it was read from under it, and three answers side by side, streamed as they are
  generated: the base model, the
  fine-tuned model closed-book (what it learned; both asked by the catalog's name for the product, as
  ``ask.named`` puts it), and the answer grounded on the catalog's description of the matched product (for a
  question other than an overview, the reader's: prodqa.read, the base model choosing words of it). Each shows
  its confidence and how long it took; the grounded one names its product. The routed answer is one of the
  panels, chosen once the closed-book answer's confidence is known, or for a question from memory other than an
  overview, the reader's answer from its finished recitation (one short answer more).
- **Evaluation**: the seen/unseen scores of both models, the training loss curve and the report's
  side-by-side examples, as the pipeline wrote them.

The models are the q8_0 GGUF files of ``export_gguf``, run by llama.cpp in this process. One generation
runs at a time (the two cores are shared by all three answers, which take turns token by token, the
fine-tuned one first); further questions wait in Gradio's queue. Bad input and missing models are reported
in the page, naming the ``dvc repro`` target that builds what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from . import read, route
from .ask import BASE_GGUF, CATALOG, DONT_KNOW, GGUF, TRAINED, asked_back, check_question, named, which
from .catalog import ASK_BACK_SCORE, Catalog
from .files import DataError, SetupError
from .generate import CONFIDENCE_TOKENS, Stream, TokenLogprobs, load_gguf, stream_gguf
from .learned import Learned
from .params import Generate, Template
from .template import prompt

PANELS = ("base", "tuned", "grounded")
HEADINGS = {"base": "Base model", "tuned": "Fine-tuned (closed book)", "grounded": "Grounded on the catalog"}
TURNS = ("reader", "tuned", "grounded", "base")  # who generates first in each round: the routed answer's first token
METRICS = {"base": "metrics/eval/base/metrics.json", "tuned": "metrics/eval/tuned/metrics.json"}
REPORT = "metrics/report/report.md"
LOSS_PLOT = "metrics/report/loss.png"


@dataclass
class Answer:
    """One panel's state: the text so far and what the page says about it."""

    text: str = ""
    note: str = ""  # the matched product, a missing model, or why nothing was generated
    started: float = field(default_factory=time.perf_counter)
    first_token_s: float | None = None
    total_s: float | None = None
    confidence: float | None = None
    source: str | None = None  # the routed answer: the panel it shows ("reader": its reading of the recitation)
    evidence: str = ""  # the routed answer: the description it was read from (recalled, or the catalog's)

    def status(self) -> str:
        parts = [self.note] if self.note else []
        if self.confidence is not None:
            parts.append(f"confidence {self.confidence:.2f}")
        if self.first_token_s is not None:
            parts.append(f"first words {self.first_token_s:.2f} s")
        if self.total_s is not None:
            parts.append(f"done in {self.total_s:.1f} s")
        elif self.first_token_s is not None:
            parts.append("generating…")
        return " · ".join(parts)


class Answerer:
    """The three models and the catalog index, loaded once; :meth:`ask` streams the three answers."""

    def __init__(self, tp: Template, gp: Generate, base: str | Path = BASE_GGUF, tuned: str | Path = GGUF,
                 catalog: str | Path = CATALOG, trained: str | Path = TRAINED):
        self.tp, self.gp = tp, gp
        self.missing: dict[str, str] = {}
        self.models = {}
        for panel, path in (("base", base), ("tuned", tuned), ("grounded", tuned)):
            try:  # two llama.cpp contexts on one (memory-mapped) file: closed-book and grounded take turns
                self.models[panel] = load_gguf(path)
            except (DataError, SetupError) as err:  # no file yet, a broken file, or no llama-cpp-python
                self.missing[panel] = (str(err) if Path(path).exists() else
                                       f"Not built yet: `{path}` is missing; run `dvc repro export_gguf`.")
        self.reader = None
        try:
            self.reader = read.load(base)
        except (DataError, SetupError) as err:
            self.missing["reader"] = str(err)
        self.catalog: Catalog | None = None
        self.catalog_missing = f"No catalog: `{catalog}` is missing; run `dvc repro catalog`."
        if Path(catalog).exists():
            self.catalog = Catalog(catalog)
        self.learned = Learned.load(trained) if Path(trained).exists() else None

    def _reading(self, question: str, title: str, description: str) -> Stream:
        """The reader's short answer (prodqa.read, the base model), as a stream of one piece: read when its turn
        comes."""
        def pieces():
            if self.reader is None:
                raise DataError(self.missing["reader"])
            yield read.read(question, title, description, self.reader, self.tp)

        return Stream(pieces(), TokenLogprobs())

    def suggest(self, text: str, k: int = 8) -> list[str]:
        return self.catalog.suggest(text, k) if self.catalog is not None and text.strip() else []

    def _route(self, answers: dict[str, Answer], streams: dict[str, Stream], match, overview: bool = True) -> None:
        """Choose the routed answer once the closed-book one's confidence is known (``prodqa.route`` decides, as for
        ``ask``): an overview is the recalled description (the tuned panel) or the catalog's; any other question
        is read from the one or the other (the reader, or the grounded panel)."""
        main, tuned = answers["main"], answers["tuned"]
        if main.note or "tuned" in self.missing:
            return
        if match is not None and match.asks_back:
            label = asked_back(match, match.score)
            main.note, main.text = label[0].upper() + label[1:], which(match)
            main.total_s = time.perf_counter() - main.started
            return
        stream = streams.get("tuned")
        if stream is not None and stream.scored < CONFIDENCE_TOKENS:
            return  # not known yet
        confidence = stream.confidence if stream is not None else tuned.confidence or 0.0
        another = self.learned.another(match and match.title, tuned.text) if self.learned is not None else None
        source = route.source(confidence, self.gp, another, match is not None)
        if source == route.MEMORY:
            about = f": {match.title}" if match is not None else ""
            main.note, main.source = f"From memory{about} (confidence {confidence:.2f})", "tuned" if overview else "reader"
        elif source == route.CATALOG:
            main.note = f"From the catalog: {match.title} (from memory: {route.unsure(confidence, self.gp, another)})"
            if overview:  # the stored description is the answer
                main.text, main.total_s = match.content, time.perf_counter() - main.started
            else:
                main.source, main.evidence = "grounded", match.content
        else:
            main.note, main.text = f"Not in the catalog (from memory: {route.unsure(confidence, self.gp, another)})", DONT_KNOW
            main.total_s = time.perf_counter() - main.started

    def ask(self, question: str) -> Iterator[tuple[str, dict[str, Answer]]]:
        """(a note for the page, the routed answer and the three panels so far), again after every piece."""
        question, note = check_question(question)  # DataError for an empty question
        answers = {panel: Answer() for panel in ("main", *PANELS)}
        if "tuned" in self.missing:
            answers["main"].note = self.missing["tuned"]
        streams: dict[str, Stream] = {}
        match, score = self.catalog.find(question) if self.catalog is not None else (None, 0.0)
        found = match.title if match is not None and not match.asks_back else None  # the page asks which one
        closed = named(question, found, self.tp)  # base and fine-tuned closed-book: by the catalog's name
        overview = route.is_overview(question, found)
        for panel in PANELS:
            if panel in self.missing:
                answers[panel].note = self.missing[panel]
                continue
            if panel == "grounded":
                if self.catalog is None:
                    answers[panel].note = self.catalog_missing
                    continue
                if match is None:
                    answers[panel].note = (f"No product in the catalog matches this question (best match {score:.0f} "
                                           f"< {ASK_BACK_SCORE}): nothing to ground the answer on.")
                    continue
                answers[panel].note = f"Grounded on: {match.title} (match {match.score:.0f})"
                streams[panel] = (stream_gguf(self.models[panel], route.answer_prompt(
                    question, match.title, match.content, self.tp), self.gp) if overview else
                    self._reading(question, match.title, match.content))
                continue
            if closed != question:
                answers[panel].note = f"Asked as: {closed}"
            streams[panel] = stream_gguf(self.models[panel], prompt(closed, self.tp), self.gp)
        note = note or ""
        yield note, answers
        while streams:
            for panel in [p for p in TURNS if p in streams]:
                answer = answers[panel]
                try:
                    piece = next(streams[panel])
                except StopIteration:
                    answer.total_s = time.perf_counter() - answer.started
                    answer.confidence = streams.pop(panel).confidence
                except DataError as err:  # e.g. a description too long for the context window
                    answer.note, answer.total_s = str(err), time.perf_counter() - answer.started
                    del streams[panel]
                else:
                    if answer.first_token_s is None:
                        answer.first_token_s = time.perf_counter() - answer.started
                    answer.text += piece
                    if streams[panel].scored >= CONFIDENCE_TOKENS:
                        answer.confidence = streams[panel].confidence
                self._route(answers, streams, match, overview)
                main = answers["main"]
                if main.source == "reader" and "reader" not in answers and "tuned" not in streams:
                    # recite, then read: the reader reads the finished recitation for the answer, timed from the
                    # question (the recitation is part of the wait)
                    answers["reader"] = Answer(started=answers["tuned"].started)
                    main.evidence = answers["tuned"].text
                    streams["reader"] = self._reading(question, found or question, main.evidence)
                if main.source in answers:  # the routed answer is the chosen panel's, as it streams
                    chosen = answers[main.source]
                    main.text, main.first_token_s, main.total_s = chosen.text, chosen.first_token_s, chosen.total_s
                yield note, answers


def evaluation_tables(root: Path) -> tuple[list[list], str]:
    """Rows (set, metric, base, fine-tuned) from both evaluations, and a note on what is missing."""
    loaded = {}
    for model, path in METRICS.items():
        if (root / path).exists():
            loaded[model] = json.loads((root / path).read_text())
    if len(loaded) < 2:
        return [], "No evaluation yet: run `dvc repro report` (or `make repro`)."
    rows = []
    for name in ("seen", "unseen"):
        for metric in ("rougeL", "rouge1", "bleu", "loss", "degenerate_answers", "examples"):
            rows.append([name, metric, loaded["base"][name].get(metric), loaded["tuned"][name].get(metric)])
    return rows, ""


def build(answerer: Answerer, root: Path = Path(".")):
    """The Gradio app."""
    import gradio as gr

    with gr.Blocks(title="prodqa: ask the fine-tuned model") as app:
        gr.Markdown("# Ask about a product\nThe base model, the fine-tuned model from memory, and the fine-tuned "
                    "model reading the catalog's description, side by side.")
        with gr.Tab("Ask"):
            with gr.Row():
                question = gr.Textbox(label="Question", placeholder="What is Girls Ballet Tutu Neon Pink?",
                                      max_lines=3, scale=5, elem_id="question")
                ask_button = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
            suggestions = gr.Dataset(components=[gr.Textbox(visible=False)], samples=[],
                                     label="Products in the catalog (click one to ask about it)", elem_id="suggestions")
            note = gr.Markdown(elem_id="note")
            texts, statuses = {}, {}
            texts["main"] = gr.Textbox(label="Answer", lines=6, max_lines=10, interactive=False, elem_id="answer-main")
            statuses["main"] = gr.Markdown(elem_id="status-main")
            evidence = gr.Textbox(label="Read from this description", lines=3, max_lines=8, interactive=False,
                                  elem_id="evidence")
            with gr.Row(equal_height=True):
                for panel in PANELS:
                    with gr.Column():
                        texts[panel] = gr.Textbox(label=HEADINGS[panel], lines=14, max_lines=14, interactive=False,
                                                  elem_id=f"answer-{panel}")
                        statuses[panel] = gr.Markdown(elem_id=f"status-{panel}")
        with gr.Tab("Evaluation"):
            rows, missing = evaluation_tables(root)
            if missing:
                gr.Markdown(missing)
            else:
                gr.Dataframe(rows, headers=["set", "metric", "base", "fine-tuned"], interactive=False)
            if (root / LOSS_PLOT).exists():
                gr.Image(str(root / LOSS_PLOT), label="Training and validation loss", interactive=False)
            if (root / REPORT).exists():
                gr.Markdown((root / REPORT).read_text())

        def on_ask(text: str):
            try:
                for message, answers in answerer.ask(text):
                    yield {note: message, **{texts[k]: answers[k].text for k in texts},
                           **{statuses[k]: answers[k].status() for k in statuses}, evidence: answers["main"].evidence}
            except DataError as err:
                yield {note: f"⚠ {err}", **{texts[k]: "" for k in texts}, **{statuses[k]: "" for k in statuses},
                       evidence: ""}

        gr.on(triggers=[question.input], fn=lambda text: gr.Dataset(samples=[[t] for t in answerer.suggest(text)]),
              inputs=question, outputs=suggestions, trigger_mode="always_last", show_progress="hidden", queue=False)
        gr.on(triggers=[suggestions.click], fn=lambda sample: f"What is {sample[0]}?", inputs=suggestions,
              outputs=question, queue=False)
        gr.on(triggers=[question.submit, ask_button.click], fn=on_ask, inputs=question,
              outputs=[note, *texts.values(), *statuses.values(), evidence], concurrency_limit=1)
    return app


def main(argv=None) -> None:
    from . import params

    ap = argparse.ArgumentParser(prog="python -m prodqa serve", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--base", default=BASE_GGUF, help=f"base model GGUF (default {BASE_GGUF})")
    ap.add_argument("--model", default=GGUF, help=f"fine-tuned model GGUF (default {GGUF})")
    ap.add_argument("--catalog", default=CATALOG)
    ap.add_argument("--trained", default=TRAINED, help="the trained products: whose description an answer recalls")
    ap.add_argument("--root", default=".", help="project folder holding metrics/ (the Evaluation tab)")
    args = ap.parse_args(argv)

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home: this machine may be offline
    import gradio as gr

    answerer = Answerer(params.load(params.Template, args.params), params.load(params.Generate, args.params),
                        base=args.base, tuned=args.model, catalog=args.catalog, trained=args.trained)
    app = build(answerer, Path(args.root))
    app.queue(max_size=64)  # further questions wait their turn; past 64 waiting the page says the queue is full
    # System fonts only: the default theme would fetch its fonts from the internet.
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    app.launch(server_name=args.host, server_port=args.port, theme=theme, show_error=True)
