"""Stage ``evaluate_typed``: trained products asked the way people type a name (prodqa.typed), not as the catalog
spells it."""

from __future__ import annotations

from .typed import WAYS, partial, question


def typed_sets(rows: list[dict], seed: int) -> dict[str, list[str]]:
    """The questions of each evaluation set ``seen_<way>``: every product of ``rows`` asked typed that way."""
    return {f"seen_{way}": [question(r["title"], way, seed) for r in rows] for way in WAYS}


def ambiguous_partials(rows: list[dict], catalog_titles: list[str]) -> int:
    """How many of ``rows`` have a partial title (:func:`partial`) that begins another title of the catalog
    too: asked that way, the model cannot know which product is meant."""
    starts = [partial(r["title"]).casefold() for r in rows]
    titles = [t.casefold() for t in catalog_titles]
    return sum(1 for r, s in zip(rows, starts) if any(t.startswith(s) and t != r["title"].casefold() for t in titles))
