"""Stages ``evaluate_base`` and ``evaluate``, second part: questions about each evaluated product, answered as ``ask``
answers them (read by the base model: prodqa.read), and scored as question answering is (prodqa.qa): exact match,
token F1, "contains" and answer length, per kind (fact, yes/no, unanswerable), for the seen set (read from the
model's own recitation when it is sure of it) and the unseen one (read from the catalog's description).
"""

from __future__ import annotations

from . import qa, read, route
from .params import Evaluate, Generate, Template


def answer_questions(reader: tuple, records: dict[str, list[dict]], p: Evaluate, gp: Generate, tp: Template,
                     bar=None) -> dict[str, tuple[dict, list[dict]]]:
    """Questions about the first ``evaluate.qa_examples`` products of each set (prodqa.qa.asked: a fact, a yes/no
    and an unanswerable one, in phrasings training never uses), answered as ``ask`` answers them (prodqa.route):
    read from the model's own recitation (``records``' answers, from :func:`prodqa.evaluate.evaluate_sets`) when it
    is sure of it and it is this product's (``recalls_another`` None), else from the stored description; scored as
    SQuAD is, per kind (prodqa.qa). ``reader``: the reading model and its tokenizer (the base model: prodqa.read)."""
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
    scorer, said = read.HFScorer(*reader), []
    for _, r, pair, _, evidence in asks:
        said.append(read.read(pair.question, r["title"], evidence, scorer, tp))
        if bar is not None:
            bar.update()
    out: dict[str, tuple[dict, list[dict]]] = {}
    for name in records:
        answered_ = [{"title": r["title"], "kind": pair.kind, "fact": pair.fact, "question": pair.question,
                      "gold": pair.answer, "answer": answer, "source": source,
                      **qa.scored(answer, pair.kind, [pair.answer])}
                     for (set_, r, pair, source, _), answer in zip(asks, said) if set_ == name]
        out[name] = (qa.summary(answered_), answered_)
    return out


def flat(summary: dict, prefix: str) -> dict[str, float]:
    """A :func:`prodqa.qa.summary` as dvclive metric names: ``<prefix>/<kind>/<score>``."""
    return {f"{prefix}/{kind}/{key}": value for kind, scores in summary.items() for key, value in scores.items()}
