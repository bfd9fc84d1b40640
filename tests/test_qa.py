"""Question–answer pairs made from a description, and answers scored as SQuAD scores them."""

import random

import pytest

from prodqa import qa

BOOK = ("In this gripping novel by Ann Cleeves, a detective returns to the Shetland Islands. Set in Lerwick in 1968, "
        "it follows two sisters. This hardcover has 320 pages and 12 photographs. \"A triumph.\" --Kirkus Reviews")
TUTU = "Dance tutu for girls ages 2-8 years. Made of nylon and cotton. 12 inches in length."


def test_facts_are_the_spans_a_person_would_ask_for():
    found = qa.facts(BOOK)
    assert found["author"] == "Ann Cleeves" and found["place"] == "Lerwick" and found["year"] == "1968"
    assert found["pages"] == "320 pages" and found["count"] == "two sisters" and found["source"] == "Kirkus Reviews"
    tutu = qa.facts(TUTU)
    assert tutu["ages"] == "2-8 years" and tutu["length"] == "12 inches" and tutu["material"] == "nylon"
    assert "author" not in tutu and "year" not in tutu


def test_a_count_is_asked_by_its_noun_and_answered_by_its_number():
    assert qa.typed_question("count", "12 photographs", "T", 0) == ("How many photographs does T have?", "12")


def test_an_echo_question_asks_for_a_span_where_it_stands():
    q, a = qa.echo("The recipes were collected by Lorenza de Medici over forty years.", random.Random(0))
    assert (q, a) in {("The recipes were collected by who over forty years?", "Lorenza de Medici"),
                      ("The recipes were collected by Lorenza de Medici over how many years?", "forty")}
    assert qa.echo("Short one.", random.Random(0)) is None


def test_pairs_are_seeded_of_every_kind_and_the_heldout_phrasing_is_never_trained():
    others = [{"content": "A thriller by John Smith, set in Paris."}]
    trained = [qa.pairs("The Book", BOOK, others, random.Random(s), 8) for s in range(30)]
    assert trained[3] == qa.pairs("The Book", BOOK, others, random.Random(3), 8)
    kinds = {p.kind for ps in trained for p in ps}
    assert kinds == {"fact", "yesno", "unanswerable"}
    asked = qa.asked("The Book", BOOK, others, random.Random(0))
    assert [p.kind for p in asked] == ["fact", "yesno", "unanswerable"]
    trained_questions = {p.question for ps in trained for p in ps}
    assert not {p.question for p in asked} & trained_questions  # evaluation asks in phrasings training never has
    assert all(p.answer == qa.NOT_SAID for ps in trained for p in ps if p.kind == "unanswerable")
    yes_no = {p.answer for ps in trained for p in ps if p.kind == "yesno"}
    assert yes_no == {"Yes.", "No."}  # true with its own fact, false with another product's


def test_a_description_without_facts_gets_an_unanswerable_question_in_evaluation_and_now_and_then_in_training():
    plain = "A plain thing."
    (pair,) = qa.asked("Plain", plain, [], random.Random(0))
    assert pair.kind == "unanswerable" and pair.answer == qa.NOT_SAID
    trained = [qa.pairs("Plain", plain, [], random.Random(s), 3) for s in range(400)]
    assert all(ps == [] or [p.kind for p in ps] == ["unanswerable"] for ps in trained)
    assert sum(bool(ps) for ps in trained) / 400 == pytest.approx(qa.ALONE_UNANSWERABLE, abs=0.06)


def test_squad_normalisation_exact_match_and_token_f1():
    assert qa.normalize("The  Montreal Gazette!") == "montreal gazette"
    assert qa.exact("the Montreal Gazette", ["Montreal Gazette"]) == 1.0
    assert qa.f1("Montreal Gazette newspaper", ["Montreal Gazette"]) == pytest.approx(0.8)
    assert qa.f1("nothing alike", ["Montreal Gazette"]) == 0.0
    assert qa.contains("He writes for the Montreal Gazette.", ["Montreal Gazette"]) == 1.0
    assert qa.contains("Montrealer", ["Montreal"]) == 0.0  # whole words


@pytest.mark.parametrize("kind, answer, gold, right", [
    ("unanswerable", "The description does not say.", [], 1.0),
    ("unanswerable", "It costs $12.", [], 0.0),
    ("yesno", "Yes.", ["yes"], 1.0),
    ("yesno", "No, it is not.", ["yes"], 0.0),
    ("fact", "Ann Cleeves", ["Ann Cleeves", "Cleeves"], 1.0),
])
def test_each_kind_is_scored_as_it_should_be(kind, answer, gold, right):
    assert qa.scored(answer, kind, gold)["exact"] == right


def test_summary_is_per_kind_with_the_median_length():
    rows = [{"kind": "fact", **qa.scored("Ann Cleeves", "fact", ["Ann Cleeves"])},
            {"kind": "fact", **qa.scored("a long answer about someone else", "fact", ["Ann Cleeves"])},
            {"kind": "yesno", **qa.scored("Yes.", "yesno", ["Yes."])}]
    s = qa.summary(rows)
    assert s["fact"]["exact"] == 0.5 and s["fact"]["questions"] == 2 and s["yesno"]["f1"] == 1.0
    assert s["all"]["questions"] == 3 and s["fact"]["words_p50"] == 4
