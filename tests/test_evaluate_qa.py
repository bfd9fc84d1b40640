"""Evaluation's questions: read as ask reads them (recitation when sure, else the stored description), scored."""

import pytest

from prodqa import evaluate_qa, params

DESC = "A gripping novel by Ann Cleeves, set in Lerwick. This hardcover has 320 pages."


@pytest.fixture
def run(shipped, monkeypatch):
    p, gp, tp = (params.parse(s, shipped[s]) for s in ("evaluate", "generate", "template"))
    prompts = []  # the descriptions read

    def fake_read(question, title, description, scorer, tp_):
        assert scorer == ("scorer of", "model", "tokenizer")  # the reader's model reads
        prompts.append(description)
        return "Ann Cleeves"

    monkeypatch.setattr(evaluate_qa.read, "read", fake_read)
    monkeypatch.setattr(evaluate_qa.read, "HFScorer", lambda model, tokenizer: ("scorer of", model, tokenizer))

    def answer(confidence, another=None):
        prompts.clear()
        records = {"seen": [{"title": "Blue Lightning", "reference": DESC, "answer": "RECITED: a novel by Ann Cleeves.",
                             "confidence": confidence, "recalls_another": another}]}
        return evaluate_qa.answer_questions(("model", "tokenizer"), records, p, gp, tp)["seen"], list(prompts)

    return answer


def test_a_sure_recitation_is_what_the_questions_are_read_from(run):
    (summary, rows), prompts = run(0.99)
    assert {r["kind"] for r in rows} == {"fact", "yesno", "unanswerable"} and all(r["source"] == "memory" for r in rows)
    assert prompts and all(x.startswith("RECITED") for x in prompts)  # no catalog text


@pytest.mark.parametrize("confidence, another", [(0.5, None), (0.99, "Another Product")])
def test_an_unsure_or_anothers_recitation_leaves_the_catalogs_description(run, confidence, another):
    (summary, rows), prompts = run(confidence, another)
    assert all(r["source"] == "catalog" for r in rows)
    assert prompts and all(x == DESC for x in prompts)


def test_answers_are_scored_per_kind(run):
    (summary, rows), _ = run(0.99)
    by_kind = {r["kind"]: r for r in rows}
    assert by_kind["unanswerable"]["exact"] == 0.0  # "Ann Cleeves" is an invented value there
    assert summary["all"]["questions"] == 3 and set(summary) == {"all", "fact", "yesno", "unanswerable"}
    flat = evaluate_qa.flat(summary, "qa_seen")
    assert flat["qa_seen/unanswerable/exact"] == 0.0 and flat["qa_seen/all/questions"] == 3
