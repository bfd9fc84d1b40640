"""Stages ``evaluate_base`` and ``evaluate``, second part: questions about each evaluated product, answered as ``ask``
answers them, and scored as question answering is (prodqa.qa): exact match, token F1, "contains" and answer length,
per kind (fact, yes/no, unanswerable), for the seen set (read from the model's own recitation when it is sure of
it) and the unseen one (read from the catalog's description).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import qa, route
from .generate import generate
from .params import Evaluate, Generate, Template
from .template import encode

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

READ_TOKENS = 32  # an evaluated reading's length limit: a short answer ends long before; a rambling one is cut here


def answer_questions(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, records: dict[str, list[dict]],
                     p: Evaluate, gp: Generate, tp: Template, bar=None) -> dict[str, tuple[dict, list[dict]]]:
    """Questions about the first ``evaluate.qa_examples`` products of each set (prodqa.qa.asked: a fact, a yes/no
    and an unanswerable one, in phrasings training never uses), answered as ``ask`` answers them (prodqa.route):
    read from the model's own recitation (``records``' answers, from :func:`prodqa.evaluate.evaluate_sets`) when it
    is sure of it and it is this product's (``recalls_another`` None), else from the stored description; scored as
    SQuAD is, per kind (prodqa.qa). All sets' readings share the decoder's batches."""
    import random

    asks = []  # (set, record, pair, source, evidence)
    for name, rs in records.items():
        rs = rs[:p.qa_examples]
        for k, r in enumerate(rs):
            others = [{"content": o["reference"]} for o in rs[k + 1:] + rs[:k]]
            rng = random.Random(f"{tp.seed}:asked:{r['title']}")
            source = route.source(r["confidence"], gp, r.get("recalls_another"), found=True)
            evidence = r["answer"] if source == route.MEMORY else r["reference"]
            asks += [(name, r, pair, source, evidence) for pair in qa.asked(r["title"], r["reference"], others, rng)]
    prompts = [route.answer_prompt(pair.question, r["title"], evidence, tp) for _, r, pair, _, evidence in asks]
    short = gp.model_copy(update={"max_new_tokens": min(READ_TOKENS, gp.max_new_tokens)})
    generated = generate(model, tokenizer, [encode(x, tokenizer) for x in prompts], short, p.batch_size, bar=bar)
    out: dict[str, tuple[dict, list[dict]]] = {}
    for name in records:
        answered_ = [{"title": r["title"], "kind": pair.kind, "fact": pair.fact, "question": pair.question,
                      "gold": pair.answer, "answer": g.text, "source": source,
                      **qa.scored(g.text, pair.kind, [pair.answer])}
                     for (set_, r, pair, source, _), g in zip(asks, generated) if set_ == name]
        out[name] = (qa.summary(answered_), answered_)
    return out


def flat(summary: dict, prefix: str) -> dict[str, float]:
    """A :func:`prodqa.qa.summary` as dvclive metric names: ``<prefix>/<kind>/<score>``."""
    return {f"{prefix}/{kind}/{key}": value for kind, scores in summary.items() for key, value in scores.items()}
