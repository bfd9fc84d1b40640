import json
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prodqa.catalog import ASK_BACK_SCORE, MIN_SCORE, Catalog, build
from prodqa.files import DataError
from stages import catalog as stage

TITLES = ["Girls Ballet Tutu Neon Pink", "Girls Ballet Tutu Neon Pink XL", "Lodge Pre-Seasoned Cast Iron Skillet",
          "Café Crème Mug", "Ballet Shoes", "Mens Leather Wallet Black", "Pink", "Pen Set", "Open Road Atlas",
          "The Girl in the Mirror", "Mirror"]


def _catalog(tmp_path, titles) -> Catalog:
    src = tmp_path / "products.parquet"
    pq.write_table(pa.Table.from_pylist([{"title": t, "content": f"about {t}"} for t in titles]), src)
    build(src, tmp_path / "catalog.sqlite")
    return Catalog(tmp_path / "catalog.sqlite")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return _catalog(tmp_path_factory.mktemp("catalog"), TITLES)


@pytest.mark.parametrize("question, title", [
    ("What is Girls Ballet Tutu Neon Pink?", "Girls Ballet Tutu Neon Pink"),
    ("What is Girls Ballet Tutu Neon Pink XL?", "Girls Ballet Tutu Neon Pink XL"),  # a near tie: the extra word decides
    ("What is Girls Ballet Tutu Pink?", "Girls Ballet Tutu Neon Pink"),  # a word missing: not the short title "Pink"
    ("tell me about the lodge pre-seasoned skillet in cast iron", "Lodge Pre-Seasoned Cast Iron Skillet"),  # words
    ("what's the lodge pre-seasoned cast iron skilet like", "Lodge Pre-Seasoned Cast Iron Skillet"),  # a typo
    ("Tell me about the balelt shoes", "Ballet Shoes"),  # a typo in a short title: one word of two
    ("Tell me about the Lodge Pre-Seasoned.", "Lodge Pre-Seasoned Cast Iron Skillet"),  # the first words of it
    ("Tell me about the open set.", None),  # "Pen Set" is not inside "open set"
    ("Tell me about the pen set.", "Pen Set"),  # a short title, asked for
    ("the girl in the mirror", "The Girl in the Mirror"),  # lower case, and not the one-word "Mirror"
    ("café crème mug?", "Café Crème Mug"),  # non-ASCII words
    ("cafe creme mug", "Café Crème Mug"),  # typed without the accents
    ("What is a quantum flux capacitor?", None),
])
def test_find(catalog, question, title):
    match, score = catalog.find(question)
    assert (match.title if match and not match.unsure else None) == title, (question, score)
    assert (score >= MIN_SCORE) == (title is not None)
    assert match is None or match.unsure == (score < MIN_SCORE)
    if match:
        assert match.content == f"about {title}" and match.context() == {"title": title, "content": f"about {title}"}


@pytest.mark.parametrize("question, meant", [
    ("Tell me about the Girls Ballet Tutu Neon.", {"Girls Ballet Tutu Neon Pink", "Girls Ballet Tutu Neon Pink XL"}),
    ("girls ballet tutu", {"Girls Ballet Tutu Neon Pink", "Girls Ballet Tutu Neon Pink XL"}),
    ("What is Girls Ballet Tutu Neon Pink?", {"Girls Ballet Tutu Neon Pink"}),  # the whole title: no doubt
    ("What is Girls Ballet Tutu Neon Pink XL?", {"Girls Ballet Tutu Neon Pink XL"}),
    ("Tell me about the Lodge Pre-Seasoned.", {"Lodge Pre-Seasoned Cast Iron Skillet"}),  # begins one title only
    ("the girl in the mirror", {"The Girl in the Mirror"}),
])
def test_a_name_that_begins_several_titles_matches_them_all(catalog, question, meant):
    match, _ = catalog.find(question)
    assert {match.title, *match.others} == meant, question


def test_a_typo_is_read_as_the_word_the_title_holds_not_the_commonest(tmp_path):
    """"celan" is one edit from both "clan" (commoner here) and "clean": the title asked about decides."""
    titles = [f"Clan {i} Saga" for i in range(50)] + ["Clean Fight", "Fight Night"]
    match, _ = _catalog(tmp_path, titles).find("Tell me about Celan Fight.")
    assert match is not None and match.title == "Clean Fight"


def test_a_name_typed_in_part_is_found_among_titles_sharing_its_one_rare_word(tmp_path):
    """"paris on the" has one rare word, held by more titles than are scored: the words side by side find it."""
    titles = [f"Paris Guide {i}" for i in range(400)] + ["Paris on the Eve 1900-1914"]
    match, _ = _catalog(tmp_path, titles).find("Tell me about Paris on the.")
    assert match.title == "Paris on the Eve 1900-1914"


@pytest.mark.parametrize("question, title", [
    ("Could you give me some details on Circus?", "Circus"),  # function words around a name cost nothing
    ("Is The Black Moon any good? Describe it.", "The Black Moon"),
    ("Tell me about Nice for.", "Nice for Mice"),  # but one where a title goes on with another word does
])
def test_function_words_around_a_name_are_not_part_of_it(tmp_path, question, title):
    titles = ["Circus", "The Black Moon", "Nice for Mice", "Nice Lovely Just So"] + [
        f"{w} Filler {i}" for i in range(5) for w in ("Some", "Any", "Could", "For")] + [
        f"Lovely {i}" for i in range(300)]  # so common a word that a title of "nice" and it is nearly all "nice"
    match, score = _catalog(tmp_path, titles).find(question)
    assert match is not None and match.title == title, (question, score)


def test_suggest_completes_the_last_half_typed_word(catalog):
    assert set(catalog.suggest("what is the ballet tu")[:2]) == {"Girls Ballet Tutu Neon Pink", "Girls Ballet Tutu Neon Pink XL"}
    assert catalog.suggest("caf") == ["Café Crème Mug"]
    assert catalog.suggest("zzz") == []


def test_common_words_do_not_flood_the_candidates(tmp_path):
    """In a big catalog a word like 'black' retrieves only after the rarer words."""
    titles = [f"Item {i} Black" for i in range(30_000)] + ["Rare Widget Black"]
    match, _ = _catalog(tmp_path, titles).find("What is the Rare Widget Black?")
    assert match.title == "Rare Widget Black"


def test_a_missing_or_foreign_file_is_a_one_line_error(tmp_path):
    with pytest.raises(DataError, match="no catalog index; run `make repro`"):
        Catalog(tmp_path / "missing.sqlite")
    sqlite3.connect(tmp_path / "other.sqlite").execute("CREATE TABLE t (x)")
    with pytest.raises(DataError, match="not a catalog index"):
        Catalog(tmp_path / "other.sqlite")


def test_stage_writes_the_index_and_its_metrics(tmp_path, params_file):
    src = tmp_path / "products.parquet"
    pq.write_table(pa.Table.from_pylist([{"uid": "1", "title": t, "content": "x"} for t in TITLES]), src)
    stage.main(["--params", params_file(), "--src", str(src), "--out", str(tmp_path / "c.sqlite"),
                "--metrics", str(tmp_path / "m.json")])
    assert json.loads((tmp_path / "m.json").read_text())["products"] == len(TITLES)
    assert Catalog(tmp_path / "c.sqlite").find("pen set")[0].title == "Pen Set"



INSIDE = ["Blowback", "Virolution", "A Day in the Life of Italy", "Apple A Day: The Myths, Misconceptions and Truths",
          "Southwest Cookbook", "Pink", "1849-50 (Flamingo)", *(f"Filler Title Number {i}" for i in range(30))]


@pytest.mark.parametrize("question, title", [
    ("What is the profession of the author of Blowback?", "Blowback"),  # a title inside a longer question
    ("Who wrote Virolution?", "Virolution"),
    ("Which newspaper does the author of Apple A Day write a column for?",  # the title before its subtitle
     "Apple A Day: The Myths, Misconceptions and Truths"),
])
def test_a_title_named_inside_a_longer_question_is_found(tmp_path, question, title):
    match, score = _catalog(tmp_path, INSIDE).find(question)
    assert (match.title if match else None) == title, (question, score)


@pytest.mark.parametrize("question, named", [
    ("What is the profession of the author of Blowback?", "Blowback"),
    ("Tell me about A Day in the Life of China.", None),  # a title named in part is another product
    ("Tell me about Southwest: The Beautiful Cookbook.", None),  # its words, but not as one phrase
    ("What colour is the pink scarf my aunt knitted?", None),  # a common word is no product's name
    ("Who wrote about the years 1849-50 in the west?", None),  # nor is a number
])
def test_only_a_whole_rare_title_named_as_one_phrase_counts_as_named_inside(tmp_path, question, named):
    """Catalog.named_inside alone (in a catalog this small the F-score already takes some of these), every title a
    candidate; "pink" is made common by giving it to many titles."""
    from prodqa.catalog import words

    catalog = _catalog(tmp_path, [*INSIDE, *(f"Pink Thing {i}" for i in range(40))])
    titles = dict(catalog.db.execute("SELECT rowid, title FROM products"))
    df = catalog._df({w for t in titles.values() for w in words(t)})
    found = catalog.named_inside(words(question), titles, df)
    assert (titles[found] if found else None) == named


LOOSE = ["Dorothy Rowe's Guide to Life", *(f"Filler Title Number {i}" for i in range(30))]


@pytest.mark.parametrize("question, title", [
    ("dorothy row guide to life - what year was she born", "Dorothy Rowe's Guide to Life"),  # a typo, more words
    ("What is a quantum flux capacitor?", None),
])
def test_a_product_named_too_loosely_to_be_sure_is_asked_back_not_missed(tmp_path, question, title):
    """Between ASK_BACK_SCORE and MIN_SCORE the best title comes back unsure (the question is asked back: "Do you
    mean …?"); below, none (not in the catalog)."""
    match, score = _catalog(tmp_path, LOOSE).find(question)
    assert (match.title if match else None) == title, (question, score)
    assert match is None or (match.unsure and match.asks_back and ASK_BACK_SCORE <= score < MIN_SCORE)


def test_a_lookup_is_the_same_in_every_process(tmp_path):
    """The rarest words that retrieve candidates are chosen by weight, then by the word, not in a set's order, which
    changes with PYTHONHASHSEED from one process to the next (a dev question once scored 85.9, asked back, and once
    88.4, answered). Six equally rare words, four of which retrieve: every process must pick the same four."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    rare = ["amber", "birch", "cedar", "delta", "ember", "fable"]
    _catalog(tmp_path, [f"{w.title()} Notebook {i}" for i, w in enumerate(rare)] + [f"Filler Title {i}" for i in range(30)])
    code = (f"from prodqa.catalog import Catalog; m, s = Catalog({str(tmp_path / 'catalog.sqlite')!r})"
            f".find({' '.join(rare)!r}); print(m and m.title, s)")
    found = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).parents[1], env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
             for seed in range(6)}
    assert len(found) == 1, found
