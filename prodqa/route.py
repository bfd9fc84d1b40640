"""Where an answer comes from and what kind of answer a question wants: decided here once, for ``ask``, the page
and the evaluation alike.

Two decisions:

- **the kind of question** (:func:`is_overview`): "What is X?", "Tell me about X", "Describe X" want the
  description; any other question about X ("Who wrote X?", "Is X a board book?") wants a short answer read from it;
- **the source** (:func:`source`): **memory** when the fine-tuned model's closed-book recitation of the product
  is confident (``generate.min_confidence``) and does not open as another trained product's description
  (``prodqa.learned``); else the **catalog**'s stored description when the lookup found the product; else
  **unknown**, and no invented description.

An answer is then: for an overview, the description itself (recited, or the catalog's); for any other question,
the reader's answer from that description (recite, then read: Sun et al., RECITE, ICLR 2023): words of it, "Yes."
/ "No." or "The description does not say.", chosen by the base model after :func:`answer_prompt`
(prodqa.read).
"""

from __future__ import annotations

from .catalog import SCAFFOLDING, words
from .params import Generate, Template
from .template import prompt

MEMORY, CATALOG, UNKNOWN, AMBIGUOUS = "memory", "catalog", "unknown", "ambiguous"
# Words that ask for a product's description as a whole ("what is X about", "give me an overview of X").
OVERVIEW = {"about", "tell", "describe", "description", "overview", "summary", "summarise", "summarize", "happens",
            "details", "info", "information", "know", "like", "give", "product", "please", "more", "explain"}
DESCRIBE = {"describe", "description", "overview", "summary", "summarise", "summarize"}  # anywhere: an overview
SPECIFIC = {"who", "whom", "whose", "when", "where", "which", "why", "how"}  # first: a question about one thing


def is_overview(question: str, title: str | None) -> bool:
    """Whether ``question`` asks for the product's description (else for something it says).

    Not when it opens with a wh-word other than "what" ("Who wrote X?", "How long is X?"). Yes when nothing is
    left of it but the title's words (``title``: as the catalog spells it; None when no product was found),
    scaffolding ("what", "is", "the") and words that ask for a description ("tell", "about"); or when it asks
    to describe the product or what it is in so many words ("Is X any good? Describe it.")."""
    asked = words(question)
    if not asked or asked[0] in SPECIFIC:
        return False
    named = set(words(title)) if title else set()
    if not [w for w in asked if w not in named and w not in SCAFFOLDING and w not in OVERVIEW]:
        return True
    text = " ".join(asked)
    return (bool(DESCRIBE & set(asked)) or ("tell" in asked and "about" in asked) or "what is it" in text
            or (asked[0] in {"what", "whats"} and asked[-1] == "about"))  # "What is the novel Folly about?"


def recalled(confidence: float, gp: Generate, another: str | None = None) -> bool:
    """An answer this confident is given as recalled, unless it opens as another trained product's description
    (``another``: :meth:`prodqa.learned.Learned.another`)."""
    return confidence >= gp.min_confidence and another is None


def unsure(confidence: float, gp: Generate, another: str | None) -> str:
    """Why an answer was not given as recalled, for its label."""
    if another is not None:
        return f"confidence {confidence:.2f}, but it recalls {another}"
    return f"confidence {confidence:.2f} < {gp.min_confidence}"


def source(confidence: float, gp: Generate, another: str | None, found: bool) -> str:
    """:data:`MEMORY`, :data:`CATALOG` or :data:`UNKNOWN`: see the module doc (``found``: the catalog found the
    product)."""
    if recalled(confidence, gp, another):
        return MEMORY
    return CATALOG if found else UNKNOWN


def answer_prompt(question: str, title: str, description: str, tp: Template):
    """The prompt that reads the answer to a question other than an overview from ``description`` (the recitation
    or the catalog's), in ``template.read_prompt``'s layout (prodqa.read scores its candidate answers after it)."""
    return prompt(question, tp, {"title": title, "content": description})
