import pyarrow as pa
import pytest

from prodqa.catalog import MIN_SCORE, TitleIndex

TITLES = ["Girls Ballet Tutu Neon Pink", "Girls Ballet Tutu Neon Pink XL", "Lodge Pre-Seasoned Cast Iron Skillet",
          "Café Crème Mug", "Ballet Shoes", "Mens Leather Wallet Black"]


@pytest.fixture(scope="module")
def index():
    return TitleIndex(pa.array(TITLES), pa.array([f"about {t}" for t in TITLES]))


@pytest.mark.parametrize("question, title", [
    ("What is Girls Ballet Tutu Neon Pink?", "Girls Ballet Tutu Neon Pink"),
    ("What is Girls Ballet Tutu Neon Pink XL?", "Girls Ballet Tutu Neon Pink XL"),  # the longest contained title
    ("tell me about the lodge cast iron skillet", "Lodge Pre-Seasoned Cast Iron Skillet"),  # words, not the string
    ("café crème mug?", "Café Crème Mug"),  # non-ASCII words
    ("What is a quantum flux capacitor?", None),
])
def test_find(index, question, title):
    match, score = index.find(question)
    assert (match.title if match else None) == title
    assert (score >= MIN_SCORE) == (title is not None)
    if match:
        assert match.content == f"about {title}" and match.context() == {"title": title, "content": f"about {title}"}


def test_suggest_completes_the_last_half_typed_word(index):
    assert index.suggest("what is the ballet tu")[:2] == ["Girls Ballet Tutu Neon Pink", "Girls Ballet Tutu Neon Pink XL"]
    assert index.suggest("caf") == ["Café Crème Mug"]
    assert index.suggest("zzz") == []


def test_common_words_do_not_flood_the_candidates():
    """In a big catalog a word like 'black' selects only when nothing rarer does."""
    titles = [f"Item {i} Black" for i in range(30_000)] + ["Rare Widget Black"]
    index = TitleIndex(pa.array(titles), pa.array(["x"] * len(titles)))
    assert set(index.candidates("what is the rare black widget")[0]) == {30_000}
    match, _ = index.find("What is the Rare Widget Black?")
    assert match.title == "Rare Widget Black"
