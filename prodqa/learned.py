"""Which trained product an answer recalls, by its opening words: confidence says *recalled*, this says *whose*.

A memorised description comes back from its first word, so an answer that opens with the first
``OPENING_WORDS`` words of a trained product's description recalls that product. The fine-tuned model is
confident about a title it never learned when the title shares a series name with one it did ("Jane's Historic
Military Aircraft Recognition Guide" recalled the trained "Jane's Warship Recognition Guide"): the answer is
then another product's, passed off as knowledge. :meth:`Learned.another` names that product, unless the answer
opens as the asked product's own description does too (a blurb a series shares, both trained).
``evaluate`` counts such answers as not from memory; ``ask`` and the page answer from the catalog instead.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Iterable

OPENING_WORDS = 8  # words of an answer that name the description it recalls (chosen on selection sets: docs/confidence.md)


def opening(text: str) -> tuple[str, ...] | None:
    """The first ``OPENING_WORDS`` words of ``text``, case aside; None when it has fewer."""
    found = re.findall(r"\w+", text.casefold())[:OPENING_WORDS]
    return tuple(found) if len(found) == OPENING_WORDS else None


class Learned:
    """The trained products' description openings: ``products`` of {title, content}, the train split."""

    def __init__(self, products: Iterable[dict]):
        self.by_opening: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for product in products:
            key = opening(product["content"])
            if key is not None:
                self.by_opening[key].add(product["title"])

    @classmethod
    def load(cls, train: str | Path) -> Learned:
        """From the sample stage's train split (parquet with title, content)."""
        import pyarrow.parquet as pq

        return cls(pq.read_table(train, columns=["title", "content"]).to_pylist())

    def another(self, title: str | None, answer: str) -> str | None:
        """The trained product other than ``title`` whose description ``answer`` opens with, or None (the
        answer opens as no description, or as this product's own too; or the product asked is not known)."""
        if title is None:
            return None
        recalled = self.by_opening.get(opening(answer), set())
        return None if not recalled or title in recalled else min(recalled)
