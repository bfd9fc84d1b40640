"""The reader: a short answer to a question, read from a description (the model's recitation, or the catalog's).

Extractive, so an answer is grounded by construction: the model does not write the answer, it chooses it among

- **spans of the description**: up to :data:`SPAN_WORDS` words of one sentence (not a publisher's notice), opening
  at one of the :data:`OPENINGS` words the model most likes to open its answer with (one forward pass of the prompt
  gives that for every word at once), and of the kind the question wants (:data:`WANTS`: "How many …?" takes a
  number, "When …?" a date, any other question any span);
- **"Yes." / "No."** for a question that asks yes or no (it opens as "Is …", "Does …");
- **"The description does not say."** (``prodqa.qa.NOT_SAID``), always,

the one it gives the highest log-probability as its *whole* answer, its end token included, after
``template.read_prompt`` (:func:`prodqa.route.answer_prompt`). Generating instead, the base model wrote a sentence
round the answer and the fine-tuned one "does not say" to nearly all; choosing spans, the base model reads best
(docs/qa.md; ``benchmarks/results/reader.json``). The reader is the **base** model for that reason: ``ask`` and
``serve`` read with the base GGUF, ``evaluate`` with the base model folder.

Two scorers, one per backend, give a prompt's next-token log-probabilities and the log-probability of each
continuation after it: :class:`HFScorer` (transformers: the prompt's cache, repeated for a batch of continuations)
and :class:`GGUFScorer` (llama.cpp: the prompt evaluated once, each continuation after it).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Protocol

from .generate import log_softmax
from .qa import BOILERPLATE, NOT_SAID, NUMBER_WORDS, normalize, sentences
from .template import encode

if TYPE_CHECKING:
    from .params import Template

OPENINGS = 8  # description words the answer may open with: those the model most likes to start it with
SPAN_WORDS = 6  # the longest span, in words (the dev set's gold answers have 1-6)
YES, NO = "Yes.", "No."
YESNO_OPENERS = {"is", "are", "was", "were", "does", "do", "did", "can", "has", "have", "will", "could", "should",
                 "would", "isn't", "doesn't", "am"}
PUNCTUATION = "\"“”'‘’()[],;:.!?"
# What a question asks for, by the words that ask it (the first of them in the question decides): a span that does
# not open as that kind opens is no answer to it ("How many recipes?" is not answered "Mexican", "When?" not "a
# farm"). Names and places are not typed: their answers are as often not capitalised ("his wife", "at Yale"), and
# typing them lost more than it won on the dev questions (docs/qa.md). Any other question may take any span.
WANTS = {
    "number": r"\bhow (?:many|much|long|old|tall|big|wide|heavy|often)\b|\b(?:what|which) (?:ages?|number)\b|"
              r"\bwhat age range\b",
    "date": r"\bwhen\b|\b(?:what|which) (?:year|date|day|decade|century)\b",
}
_NUMBER = rf"[\d£$€]|(?:one|dozen|{NUMBER_WORDS})$"  # a word that is a number
_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|" \
         r"Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)$"
# Per kind: a word its span may open with, and a word its span must hold ("Ages 3-6", "about 150", "17 November").
SPANS = {
    "number": (re.compile(rf"^(?:{_NUMBER}|(?:a|an|ages?|over|under|about|around|approx|approximately|nearly|almost|"
                          r"up|some|more|less)$)", re.I), re.compile(rf"^(?:{_NUMBER})", re.I)),
    "date": (re.compile(rf"^(?:\d|{_MONTH}|(?:in|on|since|early|late|the)$)", re.I), re.compile(rf"^(?:\d|{_MONTH})")),
}
CONTINUATIONS_PER_BATCH = 64  # transformers: continuations scored in one forward pass over the prompt's cache


class Scorer(Protocol):
    end: int  # the token that ends an answer

    def tokens(self, text: str) -> list[int]:
        """``text``'s tokens, as an answer opens with it."""

    def prefix(self, prompt):
        """Read ``prompt`` (of ``template.prompt``); the log-probability of each token opening its answer."""

    def rows(self, seqs: list[list[int]]) -> list:
        """For each token sequence after the last :meth:`prefix`, the next-token log-probabilities after each of
        its tokens (a [len, vocab] array)."""


def score(scorer: Scorer, opening, texts: list[str]) -> list[float]:
    """The log-probability of each text as the whole answer (its end token included) after the prompt whose
    opening log-probabilities are ``opening``. A text whose tokens begin another's is read off the longer one's
    rows (spans from one opening word share them): a forward pass per opening word, not per span."""
    conts = [scorer.tokens(t) for t in texts]
    longest: list[list[int]] = []
    for c in sorted(conts, key=len, reverse=True):
        if not any(s[:len(c)] == c for s in longest):
            longest.append(c)
    rows = dict(zip(map(tuple, longest), scorer.rows(longest)))
    scores = []
    for c in conts:
        s = next(s for s in longest if s[:len(c)] == c)
        lp = rows[tuple(s)]
        scores.append(float(opening[c[0]]) + sum(float(lp[j - 1][c[j]]) for j in range(1, len(c)))
                      + float(lp[len(c) - 1][scorer.end]))
    return scores


def asks_yes_or_no(question: str) -> bool:
    words = normalize(question).split()
    return bool(words) and words[0] in YESNO_OPENERS


def wants(question: str) -> str | None:
    """The kind of span that answers ``question`` (a key of :data:`WANTS`), or None when any span may."""
    text = " ".join(normalize(question).split())
    found = [(m.start(), kind) for kind, pattern in WANTS.items() for m in [re.search(pattern, text)] if m]
    return min(found)[1] if found else None


def of_kind(words: list[str], kind: str | None) -> bool:
    """Whether the span ``words`` can answer a question wanting ``kind`` (None: any span can): it opens as that
    kind may open and holds a word of the kind (:data:`SPANS`)."""
    if kind is None:
        return True
    opens, holds = SPANS[kind]
    return bool(opens.match(words[0])) and any(holds.match(w) for w in words)


def candidates(question: str, description: str, opening, scorer: Scorer) -> list[str]:
    """The answers the reader chooses among (see the module doc), ``opening`` being the prompt's next-token
    log-probabilities: spans of the kind the question wants (:func:`wants`), opening at the :data:`OPENINGS`
    best-liked description words that the question does not already say. No span of that kind: "does not say"."""
    fixed = [NOT_SAID] + ([YES, NO] if asks_yes_or_no(question) else [])
    if fixed[1:]:
        return fixed
    said = [[w.strip(PUNCTUATION) for w in sentence.split()] for sentence in sentences(description)
            if not BOILERPLATE.search(sentence)]  # no answer from a publisher's notice ("Copyright Reed Business…")
    skipped = {*normalize(question).split(), ""}  # the question's own words open no answer; nor does punctuation
    kind = wants(question)
    liked = {}
    for k, words in enumerate(said):
        for i, w in enumerate(words):
            if normalize(w) not in skipped and (kind is None or SPANS[kind][0].match(w)):
                liked[k, i] = opening[scorer.tokens(w)[0]]
    starts = sorted(liked, key=lambda at: -liked[at])[:OPENINGS]
    spans = {" ".join(said[k][i:i + n]).strip(PUNCTUATION) for k, i in starts for n in range(1, SPAN_WORDS + 1)
             if i + n <= len(said[k]) and of_kind(said[k][i:i + n], kind)}  # within one sentence
    return fixed + sorted(s for s in spans if s)


def read(question: str, title: str, description: str, scorer: Scorer, tp: Template) -> str:
    """The answer to ``question`` read from ``description``: the candidate the model likes best as its answer."""
    from .route import answer_prompt

    opening = scorer.prefix(answer_prompt(question, title, description, tp))
    options = candidates(question, description, opening, scorer)
    scores = score(scorer, opening, options)
    return options[max(range(len(options)), key=scores.__getitem__)]


class HFScorer:
    """:class:`Scorer` for a transformers model: continuations are read in batches over the prompt's cache."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer, self.end = model, tokenizer, tokenizer.eos_token_id
        self._cache = None

    def tokens(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prefix(self, prompt):
        import torch

        ids = torch.tensor([encode(prompt, self.tokenizer)], device=self.model.device)
        with torch.inference_mode():
            out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
        self._cache = out.past_key_values
        return torch.log_softmax(out.logits[0, -1].float(), -1).cpu().numpy()

    def rows(self, seqs: list[list[int]]) -> list:
        import copy

        import torch

        out = []
        for at in range(0, len(seqs), CONTINUATIONS_PER_BATCH):
            batch = seqs[at:at + CONTINUATIONS_PER_BATCH]
            width = max(map(len, batch))  # padded on the right: a padding token never comes before a real one
            ids = torch.tensor([s + [self.end] * (width - len(s)) for s in batch], device=self.model.device)
            cache = copy.deepcopy(self._cache)
            cache.batch_repeat_interleave(len(batch))
            with torch.inference_mode():
                lp = torch.log_softmax(self.model(input_ids=ids, past_key_values=cache).logits.float(), -1)
            out += [lp[r, :len(s)].cpu().numpy() for r, s in enumerate(batch)]
        return out


class GGUFScorer:
    """:class:`Scorer` for a GGUF model in llama.cpp (loaded with ``logits_all``: :func:`load`): the prompt is
    evaluated once, each continuation after it."""

    def __init__(self, llm):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llm, self.end = llm, llm.token_eos()
        self.chat = Jinja2ChatFormatter(llm.metadata["tokenizer.chat_template"], add_generation_prompt=True,
                                        eos_token=llm.detokenize([llm.token_eos()]).decode(),
                                        bos_token=llm.detokenize([llm.token_bos()]).decode())
        self._n = 0

    def tokens(self, text: str, special: bool = False) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=False, special=special)

    def prefix(self, prompt):
        from .files import DataError
        from .template import is_chat

        ids = self.tokens(self.chat(messages=prompt).prompt if is_chat(prompt) else prompt, special=True)
        if len(ids) + 4 * SPAN_WORDS >= self.llm.n_ctx():
            raise DataError(f"the description does not fit the reader's context ({len(ids)} tokens)")
        self.llm.reset()
        self.llm.eval(ids)
        self._n = len(ids)
        return log_softmax(self.llm.scores[self._n - 1])

    def rows(self, seqs: list[list[int]]) -> list:
        out = []
        for s in seqs:
            self.llm.n_tokens = self._n  # the prompt's cache stays; the last continuation's goes
            self.llm.eval(s)
            out.append(log_softmax(self.llm.scores[self._n:self._n + len(s)]))
        return out


def load(path, n_ctx: int = 1024):
    """A GGUF reader (the base model's file): llama.cpp with every position's logits, for :class:`GGUFScorer`."""
    from .generate import load_gguf

    return GGUFScorer(load_gguf(path, n_ctx=n_ctx, logits_all=True))
