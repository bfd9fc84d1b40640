"""The ways people type a product's name (prodqa.typed)."""

import pytest

from prodqa import typed

TITLE = "The Girl in the Mirror: A Novel of Suspense"


def test_each_way_changes_only_what_it_says():
    assert typed.question(TITLE, "lower") == f"Tell me about {TITLE.lower()}."
    assert typed.question(TITLE, "partial") == "Tell me about The Girl in the Mirror:."  # 5 of 9 words
    free = typed.question(TITLE, "free")
    assert TITLE in free and free in {f.format(title=TITLE) for f in typed.FREE_PHRASINGS}
    misspelt = typed.question(TITLE, "typo").removeprefix("Tell me about ").removesuffix(".")
    changed = [(a, b) for a, b in zip(TITLE.split(), misspelt.split()) if a != b]
    assert 1 <= len(changed) <= 2 and all(sorted(a) == sorted(b) and a[0] == b[0] and len(a) >= 5 for a, b in changed)


def test_ways_are_deterministic_and_differ_between_titles():
    assert [typed.question(TITLE, w) for w in typed.WAYS] == [typed.question(TITLE, w) for w in typed.WAYS]
    typos = {typed.question(f"Wonderful Product Number {i}", "typo") for i in range(20)}
    assert len(typos) == 20
    with pytest.raises(ValueError, match="unknown way"):
        typed.question(TITLE, "shouting")


def test_short_titles_survive_every_way():
    for title in ("Pink", "Tutu Set", "a"):
        for way in typed.WAYS:
            assert title.lower() in typed.question(title, way).lower() or way == "typo"
