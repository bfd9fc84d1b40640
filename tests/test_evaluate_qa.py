"""Evaluation's questions: read as ask reads them (recitation when sure, else the stored description), scored."""

import pytest

from prodqa import evaluate_qa, params
from prodqa.generate import Generated

DESC = "A gripping novel by Ann Cleeves, set in Lerwick. This hardcover has 320 pages."


@pytest.fixture
def run(shipped, monkeypatch):
    p, gp, tp = (params.parse(s, shipped[s]) for s in ("evaluate", "generate", "template"))
    prompts = []

    def fake_generate(model, tokenizer, ids, gp_, batch_size, bar=None):
        assert gp_.max_new_tokens == evaluate_qa.READ_TOKENS  # a reading is short
        return [Generated("Ann Cleeves", [-0.01])] * len(ids)

    monkeypatch.setattr(evaluate_qa, "generate", fake_generate)
    monkeypatch.setattr(evaluate_qa, "encode", lambda prompt, tokenizer: prompts.append(prompt) or [1])

    def answer(confidence, another=None):
        prompts.clear()
        records = {"seen": [{"title": "Blue Lightning", "reference": DESC, "answer": "RECITED: a novel by Ann Cleeves.",
                             "confidence": confidence, "recalls_another": another}]}
        return evaluate_qa.answer_questions(None, None, records, p, gp, tp)["seen"], list(prompts)

    return answer


def test_a_sure_recitation_is_what_the_questions_are_read_from(run):
    (summary, rows), prompts = run(0.99)
    assert {r["kind"] for r in rows} == {"fact", "yesno", "unanswerable"} and all(r["source"] == "memory" for r in rows)
    assert all("RECITED" in x[0]["content"] and DESC not in x[0]["content"] for x in prompts)  # no catalog text


@pytest.mark.parametrize("confidence, another", [(0.5, None), (0.99, "Another Product")])
def test_an_unsure_or_anothers_recitation_leaves_the_catalogs_description(run, confidence, another):
    (summary, rows), prompts = run(confidence, another)
    assert all(r["source"] == "catalog" for r in rows)
    assert all(DESC in x[0]["content"] and "RECITED" not in x[0]["content"] for x in prompts)


def test_answers_are_scored_per_kind(run):
    (summary, rows), _ = run(0.99)
    by_kind = {r["kind"]: r for r in rows}
    assert by_kind["unanswerable"]["exact"] == 0.0  # "Ann Cleeves" is an invented value there
    assert summary["all"]["questions"] == 3 and set(summary) == {"all", "fact", "yesno", "unanswerable"}
    flat = evaluate_qa.flat(summary, "qa_seen")
    assert flat["qa_seen/unanswerable/exact"] == 0.0 and flat["qa_seen/all/questions"] == 3
