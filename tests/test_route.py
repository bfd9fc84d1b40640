"""The routing decision, written once: the kind of question and where its answer comes from."""

import pytest

from prodqa import params, route


@pytest.fixture
def gp(shipped):
    return params.parse("generate", shipped["generate"])


@pytest.mark.parametrize("question, title, overview", [
    ("What is Girls Ballet Tutu Neon Pink?", "Girls Ballet Tutu Neon Pink", True),
    ("tell me about the girls ballet tutu neon pink", "Girls Ballet Tutu Neon Pink", True),
    ("What is The Prophet about?", "The Prophet", True),
    ("What is the novel Folly about?", "Folly", True),
    ("Is Blowback any good? Describe it.", "Blowback", True),
    ("Thinking of buying Blowback - what is it?", "Blowback", True),
    ("What is the profession of the author of Blowback?", "Blowback", False),
    ("Who is Blowback by?", "Blowback", False),  # all scaffolding, but it asks who
    ("How many recipes are in The Art of Russian Cuisine?", "The Art of Russian Cuisine", False),
    ("Is Mog's Kittens a board book?", "Mog's Kittens", False),
    ("Who wrote Virolution?", None, False),
])
def test_an_overview_wants_the_description_any_other_question_an_answer(question, title, overview):
    assert route.is_overview(question, title) is overview


@pytest.mark.parametrize("confidence, another, found, source", [
    (0.99, None, True, route.MEMORY),
    (0.99, None, False, route.MEMORY),  # recalled, though the catalog lacks it
    (0.99, "Another Product", True, route.CATALOG),  # confident, but another trained product's description
    (0.50, None, True, route.CATALOG),
    (0.50, None, False, route.UNKNOWN),
])
def test_the_source_is_memory_when_sure_and_its_own_else_the_catalog_else_unknown(gp, confidence, another, found, source):
    assert route.source(confidence, gp, another, found) == source


def test_the_reading_prompt_holds_the_description_after_the_read_prompt(shipped):
    tp = params.parse("template", shipped["template"])
    system, user = route.answer_prompt("Who wrote X?", "X", "A novel by Ann Cleeves.", tp)
    assert system["content"] == f"{tp.read_prompt}\n\nProduct: X\nDescription: A novel by Ann Cleeves."
    assert user == {"role": "user", "content": "Who wrote X?"}
