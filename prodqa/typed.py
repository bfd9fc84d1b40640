"""The ways people type a product's name, not as the catalog spells it.

Each way (:data:`WAYS`) turns a title into a question, deterministically (seeded by the title). Training
(``template.typed_share``), stage ``evaluate_typed`` and the catalog lookup benchmark (benchmarks/lookup.py) use
the same functions.

- ``lower``: the title lower-cased, in one of the project's own phrasings;
- ``partial``: its first ~60% of words (at least two);
- ``typo``: two neighbouring letters swapped in up to two words of 5+ letters;
- ``free``: the exact title in a phrasing outside the project's list (:data:`FREE_PHRASINGS`).
"""

from __future__ import annotations

import random
import re

WAYS = ("lower", "partial", "typo", "free")
FREE_PHRASINGS = (
    "I'm looking at {title}. What can you tell me about it?",
    "Could you give me some details on {title}?",
    "Is {title} any good? Describe it.",
    "Thinking of buying {title} - what is it?",
)
OWN_PHRASING = "Tell me about {title}."  # one of template.questions, for the ways that change only the title


def _rng(way: str, title: str, seed: int) -> random.Random:
    return random.Random(f"{seed}:{way}:{title}")


def partial(title: str) -> str:
    w = title.split()
    return " ".join(w[: max(2, round(0.6 * len(w)))]) if len(w) > 2 else title


def typo(title: str, rng: random.Random) -> str:
    """Two neighbouring letters swapped inside up to two words of 5+ letters (the first letter kept)."""
    spans = [m.span() for m in re.finditer(r"[A-Za-z]{5,}", title)]
    for start, end in sorted(rng.sample(spans, min(2, len(spans)))):
        i = rng.randrange(start + 1, end - 1)
        if title[i] != title[i + 1]:
            title = title[:i] + title[i + 1] + title[i] + title[i + 2:]
    return title


def question(title: str, way: str, seed: int = 0) -> str:
    """The question about ``title`` typed the way ``way``."""
    rng = _rng(way, title, seed)
    if way == "lower":
        return OWN_PHRASING.format(title=title.lower())
    if way == "partial":
        return OWN_PHRASING.format(title=partial(title))
    if way == "typo":
        return OWN_PHRASING.format(title=typo(title, rng))
    if way == "free":
        return rng.choice(FREE_PHRASINGS).format(title=title)
    raise ValueError(f"unknown way {way!r}; one of {WAYS}")
