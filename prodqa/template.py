"""The prompt layout, owned here: question phrasings, system prompt, format, and stage ``template``.

Reads the ``sample`` splits and the base model's tokenizer; writes ``train.jsonl`` and
``validation.jsonl`` plus token-length statistics. Because prompt and completion are separate fields,
TRL computes the loss on the answer tokens only.

Every product has its own seeded order of the question phrasings (:func:`phrasings`, keyed by title, so
it does not depend on the split or the row order). Training uses the first
``template.phrasings_per_product`` of them, one example each, so the model meets each product under
several questions; the next one (:func:`heldout_question`) is never used in training for that product and
is what the ``seen`` evaluation asks. Validation and test products are asked their first phrasing.

``chat`` (default) keeps messages, so TRL renders them with the model's own chat template; ``alpaca``
writes plain-text prompts in the Alpaca layout, for models without a chat template; ``plain`` is the
question alone on a line (no system prompt, no markup), the fewest tokens an exposure can cost. :func:`prompt` is the
only builder of a prompt: template, evaluate, export_gguf, ask and serve all call it; :func:`is_chat` is the
only test of which layout a prompt has, and :func:`encode` the only way a prompt becomes token ids.
"""

from __future__ import annotations

import random

import numpy as np

from .params import Template

ALPACA = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{question}\n\n### Response:\n"
)
# The text layouts (template.format other than chat): {question} is the question, after the system prompt
# and the product when grounded.
TEXT_LAYOUTS = {"alpaca": ALPACA, "plain": "{question}\n"}


def phrasings(title: str, p: Template) -> list[str]:
    """This product's questions, in its own seeded order (the same title always gets the same order)."""
    order = list(p.questions)
    random.Random(f"{p.seed}:{title}").shuffle(order)
    return [q.format(title=title) for q in order]


def shown_title(title: str, i: int, p: Template) -> str:
    """The title as the ``i``-th training question of its product types it: as is, or with probability
    ``template.typed_share`` the way people type it (lower case, its first words, a typo; seeded per example,
    apart from the evaluation's own seed, so an evaluated typo is not a trained one)."""
    from .typed import partial, typo

    rng = random.Random(f"{p.seed}:shown:{title}:{i}")
    if rng.random() >= p.typed_share:
        return title
    way = rng.choice(("lower", "partial", "typo"))
    return title.lower() if way == "lower" else partial(title) if way == "partial" else typo(title, rng)


def heldout_question(title: str, p: Template) -> str:
    """The phrasing a trained product never had in training: what the ``seen`` evaluation asks."""
    return phrasings(title, p)[p.phrasings_per_product]


SETS = ("seen", "unseen")  # what evaluation asks: trained products (closed-book recall) and test products


def questions(rows: list[dict], p: Template, seen: bool) -> list[str]:
    """The question each product of an evaluation set is asked: a held-out phrasing for trained products
    (:func:`heldout_question`), the first otherwise."""
    return [heldout_question(r["title"], p) if seen else phrasings(r["title"], p)[0] for r in rows]


def prompt(question: str, p: Template, context: dict | None = None):
    """The prompt for ``question`` in the trained layout (messages, or the text of a ``TEXT_LAYOUTS`` layout).

    ``context`` (a product with title and content: the catalog's description, or the model's own recitation) is
    given to the model to read the answer from, after ``template.read_prompt``; without it the model answers
    closed-book, after ``template.system_prompt``.
    """
    grounding = f"Product: {context['title']}\nDescription: {context['content']}" if context else ""
    system = "\n\n".join(s for s in ((p.read_prompt if context else p.system_prompt), grounding) if s)
    if p.format in TEXT_LAYOUTS:
        return TEXT_LAYOUTS[p.format].format(question=f"{system}\n\n{question}" if context else question)
    # The system turn always, empty when there is no system prompt: without one a chat template may add its
    # own (SmolLM2's: 9 tokens more than the default's on every exposure).
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def is_chat(prompt_) -> bool:
    """Whether a prompt of :func:`prompt` is chat messages (else the text of a ``TEXT_LAYOUTS`` layout)."""
    return isinstance(prompt_, list)


def encode(prompt_, tokenizer) -> list[int]:
    """Token ids of a prompt, up to where the answer starts (the chat template's generation prompt)."""
    if is_chat(prompt_):
        return list(tokenizer.apply_chat_template(prompt_, add_generation_prompt=True, tokenize=True,
                                                  return_dict=False))
    return tokenizer(prompt_, add_special_tokens=False)["input_ids"]


def answered(prompt_, answer: str) -> dict:
    """A prompt (messages or text) and its answer, in TRL's prompt–completion layout."""
    if is_chat(prompt_):
        return {"prompt": prompt_, "completion": [{"role": "assistant", "content": answer}]}
    return {"prompt": prompt_, "completion": answer}


def question_text(prompt_) -> str:
    """The user's question inside a prompt built by :func:`prompt`."""
    if is_chat(prompt_):
        return prompt_[-1]["content"]
    for layout in TEXT_LAYOUTS.values():  # alpaca first: plain's empty head matches any text
        head, tail = layout.split("{question}")
        if prompt_.startswith(head) and prompt_.endswith(tail):
            return prompt_[len(head):len(prompt_) - len(tail)]
    return prompt_


def window(content: str, answer: str, chars: int) -> str:
    """About ``chars`` characters of a description around the first place it says ``answer`` (whole sentences;
    the whole description when ``chars`` is 0 or it is short): a reading example costs fewer tokens."""
    from .qa import sentences

    if not chars or len(content) <= chars:
        return content
    parts = sentences(content)
    at = next((i for i, s in enumerate(parts) if answer and answer in s), 0)
    lo = hi = at
    while True:  # grow by a sentence either side while it fits
        grown = False
        for i in (hi + 1, lo - 1):
            if 0 <= i < len(parts) and len(" ".join(parts[min(lo, i):max(hi, i) + 1])) <= chars:
                lo, hi, grown = min(lo, i), max(hi, i), True
        if not grown:
            return " ".join(parts[lo:hi + 1])


def reading(rows: list[dict], p: Template) -> list[dict]:
    """Up to ``template.qa_per_product`` reading examples per product: a question about its description (prodqa.qa,
    seeded by title) answered in a few words, with the description (:func:`window`) in the prompt."""
    from .qa import NOT_SAID, pairs

    examples = []
    for k, r in enumerate(rows):
        rng = random.Random(f"{p.seed}:qa:{r['title']}")
        others = rows[k + 1:k + 6] + rows[max(k - 5, 0):k]  # where a yes/no question's false value comes from
        for pair in pairs(r["title"], r["content"], others, rng, p.qa_per_product):
            context = window(r["content"], "" if pair.answer == NOT_SAID else pair.answer, p.qa_context_chars)
            examples.append(answered(prompt(pair.question, p, {"title": r["title"], "content": context}), pair.answer))
    return examples


def build(rows: list[dict], p: Template, train: bool, readers: list[dict] = ()) -> list[dict]:
    """Prompt–completion examples: ``phrasings_per_product`` per product for training, else one; and for training,
    ``qa_per_product`` reading examples each (:func:`reading`), of these products and of ``readers`` (products that
    only teach reading: sample's ``reading`` split)."""
    per_product = p.phrasings_per_product if train else 1
    examples = []
    for r in rows:
        for i, q in enumerate(phrasings(r["title"], p)[:per_product]):
            if train and p.typed_share:
                q = q.replace(r["title"], shown_title(r["title"], i, p), 1)
            examples.append(answered(prompt(q, p), r["content"]))
    return examples + (reading([*rows, *readers], p) if train and p.qa_per_product else [])


def render(ex: dict, tokenizer) -> tuple[list[int], list[int]]:
    """Token ids of (prompt, completion) as TRL will see them."""
    prompt_ids = encode(ex["prompt"], tokenizer)
    if is_chat(ex["prompt"]):
        full = tokenizer.apply_chat_template(ex["prompt"] + ex["completion"], tokenize=True, return_dict=False)
        return prompt_ids, list(full[len(prompt_ids):])
    return prompt_ids, tokenizer(ex["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def length_stats(examples: list[dict], tokenizer, max_seq_len: int) -> dict:
    lengths = np.array([sum(map(len, render(ex, tokenizer))) for ex in examples])
    if not len(lengths):
        return {"examples": 0}
    return {
        "examples": int(len(lengths)),
        "tokens_total": int(lengths.sum()),
        "tokens_mean": round(float(lengths.mean()), 1),
        "tokens_p50": int(np.percentile(lengths, 50)),
        "tokens_p95": int(np.percentile(lengths, 95)),
        "tokens_max": int(lengths.max()),
        "truncated": int((lengths > max_seq_len).sum()),
        "truncated_share": round(float((lengths > max_seq_len).mean()), 4),
    }
