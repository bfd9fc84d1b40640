"""Questions about a product that its description answers, made from the description; and answers scored as QA is.

No question-generation model is reachable offline, so :func:`pairs` makes question–answer pairs by rules over a
description's sentences, in the spirit of rule-based question generation (Heilman & Smith, 2010):

- **echo** questions: a sentence with one span (a name, a number with its noun, a year, a quoted source)
  replaced in place by the wh-word its type asks for ("Judith Kerr's adventures have entertained children for
  more than 30 years." → "Judith Kerr's adventures have entertained children for more than how many years?").
  They teach what a reader of SQuAD learns: find the sentence the question's words come from, and give the span
  at the place the wh-word stands;
- **typed** questions in people's words about the facts a pattern finds ("by Ann Cleeves": *Who wrote …?*,
  "made of cotton": *What is … made of?*, "12 inches": *How long is …?*), in several phrasings;
- **yes/no** questions, true with the product's own fact, false with the same kind of fact of another product;
- **unanswerable** questions: a typed question whose pattern finds nothing in this description, answered
  :data:`NOT_SAID`, so the reader learns to say so rather than invent a value.

Stage ``template`` mixes such pairs into the training data (the reader learns to answer from a description in a
few words); ``evaluate`` asks pairs in phrasings that training never uses (:data:`HELDOUT`). The scores are
SQuAD's (:func:`exact`, :func:`f1`, normalised by :func:`normalize` as its official script does), with
``contains`` for answers written as sentences.
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from dataclasses import dataclass

NOT_SAID = "The description does not say."
KINDS = ("fact", "yesno", "unanswerable")  # what evaluate asks; overview is recall (ROUGE-L), asked apart
# An answer that says the description does not give it (or that the system does not know): right for unanswerable.
_NOT_SAID_RE = re.compile(r"\b(does not say|doesn't say|not (?:say|mention|given|stated)|no mention|don't know|"
                          r"do not know|not in the catalog)\b", re.I)

NUMBER_WORDS = ("two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|"
                 "hundred|hundreds|dozens")
_NAME = r"[A-Z][\w.'&-]*(?: (?:de |van |von |la |of )?[A-Z][\w.'&-]*){1,3}"  # two to four capitalised words
_UNITS = {  # a measure's unit -> the typed questions about it
    "length": ("inches|inch|cm|centimeters|centimetres|mm|feet|foot|ft|meters|metres",
               ("How long is {title}?", "What length is {title}?", "How big is {title}?")),
    "weight": ("ounces|oz|pounds|lbs|lb|grams|kg",
               ("How much does {title} weigh?", "What does {title} weigh?", "What is the weight of {title}?")),
    "pages": ("pages", ("How many pages does {title} have?", "How long is the book {title}?",
                        "What is the page count of {title}?")),
    "running time": ("minutes|mins", ("What is the running time of {title}?", "How long does {title} run?",
                                      "How many minutes is {title}?")),
}
# Typed facts: a pattern over the description (group 1 is the answer) and the questions people ask of it. The last
# phrasing of each is never trained (:data:`HELDOUT`): evaluate asks it.
TYPED = {
    "author": (rf"\b(?:written by|[Bb]y|author|novelist|historian|journalist|poet|professor|critic) ({_NAME})",
               ("Who wrote {title}?", "Who is the author of {title}?", "Who is {title} by?", "Who made {title}?")),
    "source": (r"--\s?([A-Z][\w.'& ]{2,40}?)(?:[,.;]|$)",
               ("Who is quoted in the description of {title}?", "Which review is quoted for {title}?",
                "Whose words of praise are given for {title}?")),
    "place": (rf"\b(?:[Ss]et in|lives in|born in|based in|made in|[Rr]ecorded in) ({_NAME}|[A-Z][a-z]+)",
              ("Where is {title} set?", "Which place does the description of {title} name?",
               "Where does {title} take place?")),
    "year": (r"\b(?:in|since|from|of) (1[5-9]\d\d|20[0-2]\d)\b",
             ("In what year does {title} say this happened?", "Which year is {title} about?",
              "What year does the description of {title} give?")),
    "material": (r"\b[Mm]ade (?:of|from|with) ([a-z][a-z -]{2,30}?)(?=[.,;]| and | for |$)",
                 ("What is {title} made of?", "What material is {title}?", "Which material is used in {title}?")),
    "ages": (r"\b[Aa]ges? (\d[\d\s–-]*(?:to \d+ )?(?:months|years)?(?:[\s–-]+\d+ years)?)",
             ("What ages is {title} for?", "Which age group is {title} meant for?", "How old should a child be for {title}?")),
    "includes": (r"\b(?:includes|including|features|contains|comes with) ([^.;:]{3,40}?)(?=[.;:]|$)",
                 ("What does {title} include?", "What comes with {title}?", "What is included in {title}?")),
    **{unit: (rf"\b(\d[\d,.]*(?:[-–]\d+)? ?(?:{words}))\b", asks) for unit, (words, asks) in _UNITS.items()},
    "count": (rf"\b((?!1[5-9]\d\d\b|20[0-2]\d\b)(?:\d[\d,]*|{NUMBER_WORDS}) (?!inches|pages|minutes|years|months|ounces|pounds)[a-z]+s)\b",
              ("How many {noun} does {title} have?", "How many {noun} are in {title}?",
               "What number of {noun} does {title} give?")),
}
UNANSWERED = ("How much does {title} cost?", "What is the price of {title}?", "Is {title} on sale?")  # never in a description
def asked(title: str, content: str, others: list[dict], rng: random.Random) -> list[Pair]:
    """What evaluation asks of a product: one question of each kind its description allows (a typed fact, a yes/no
    question, an unanswerable one), in the phrasings training never uses."""
    made = pairs(title, content, others, rng, n=len(TYPED) + 2, heldout=True)
    return [next(p for p in made if p.kind == kind) for kind in KINDS if any(p.kind == kind for p in made)]


KIND_SHARE = {"fact": 0.65, "unanswerable": 0.15, "yesno": 0.2}  # how often a training pair is of each kind
ALONE_UNANSWERABLE = 0.25  # a product whose description answers none of the questions made gets one this often
HELDOUT = -1  # the phrasing of a typed question that training never uses: evaluate asks it
BOILERPLATE = re.compile(r"Copyright|All rights reserved|--This text", re.I)  # no question about a publisher's notice
MAX_ECHO_WORDS = 40  # longer "sentences" are run-ons of a description that lost its spaces: no question
WH = {"name": "who", "number": "how many", "year": "what year", "quote": "what"}  # an echo question's wh-word by span


@dataclass(frozen=True)
class Pair:
    kind: str  # fact, yesno or unanswerable
    question: str
    answer: str
    fact: str = ""  # which fact: a TYPED key, or "echo"


def sentences(text: str) -> list[str]:
    """The description's sentences (a simple split: ends of sentences before a capital letter or a quote)."""
    return [s.strip() for s in re.split(r"(?<=[a-z0-9)][.!?])[\"”]?\s*(?=[\"“A-Z])", text) if len(s.strip()) > 3]


def facts(content: str) -> dict[str, str]:
    """The first answer each :data:`TYPED` pattern finds in a description (a count also keeps its noun)."""
    found = {}
    for fact, (pattern, _) in TYPED.items():
        m = re.search(pattern, content)
        if m:  # a name does not run into the next sentence ("Jersey. Our"), though initials end in a dot
            found[fact] = re.split(r"(?<=\w\w)\. ", m.group(1))[0].strip(" ,;:-")
    return found


def typed_question(fact: str, value: str, title: str, phrasing: int) -> tuple[str, str]:
    """The ``phrasing``-th question about a typed fact, and its answer (a count is asked by its noun)."""
    asks = TYPED[fact][1]
    if fact == "count":
        number, noun = value.split(" ", 1)
        return asks[phrasing].format(title=title, noun=noun), number
    return asks[phrasing].format(title=title), value


def echo(sentence: str, rng: random.Random) -> tuple[str, str] | None:
    """A question about one span of ``sentence``, asked in place by its wh-word, and the span; None if none."""
    spans = [(m, "year") for m in re.finditer(r"\b(1[5-9]\d\d|20[0-2]\d)\b", sentence)]
    spans += [(m, "number") for m in re.finditer(rf"\b(\d[\d,]*|{NUMBER_WORDS})(?= [a-z]+s\b)", sentence)]
    spans += [(m, "name") for m in re.finditer(rf"(?<!^)(?<![.!?] )\b({_NAME})", sentence)]
    if not 5 <= len(sentence.split()) <= MAX_ECHO_WORDS or BOILERPLATE.search(sentence):
        return None
    if not spans:
        return None
    m, kind = rng.choice(spans)
    span = m.group(1).removesuffix("'s").removesuffix("’s").rstrip(".,")
    asked = f"{sentence[:m.start(1)]}{WH[kind]}{sentence[m.start(1) + len(span):]}".strip().rstrip(".!?;:,\"” ") + "?"
    return asked[0].upper() + asked[1:], span


def claim(sentence: str, others: list[dict], rng: random.Random) -> Pair | None:
    """A yes/no question whether the description says what ``sentence`` says: true as it stands, or false with one
    of its spans changed (a number or year moved, a name swapped for a name of another product's description)."""
    if not 5 <= len(sentence.split()) <= MAX_ECHO_WORDS or BOILERPLATE.search(sentence):
        return None
    said = sentence.strip().rstrip(".!?;:,\"” ")
    asked = lambda text: f"Is it true that {text[0].lower()}{text[1:]}?"  # noqa: E731
    if rng.random() < 0.5:
        return Pair("yesno", asked(said), "Yes.", "claim")
    spans = [(m, "number") for m in re.finditer(r"\b\d{1,4}\b", said)]
    names = [n for o in others for n in re.findall(_NAME, o["content"])]
    spans += [(m, "name") for m in re.finditer(rf"(?<!^)\b({_NAME})", said)] if names else []
    if not spans:
        return None
    m, kind = rng.choice(spans)
    other = str(int(m.group(0)) + rng.randint(2, 9)) if kind == "number" else rng.choice(names)
    if other in said:
        return None
    return Pair("yesno", asked(said[:m.start()] + other + said[m.end():]), "No.", "claim")


def pairs(title: str, content: str, others: list[dict], rng: random.Random, n: int, heldout: bool = False) -> list[Pair]:
    """Up to ``n`` question–answer pairs about one product, of every kind, in a seeded order.

    ``others`` (other products' {content}) give a yes/no question its false value. Training phrasings
    (``heldout`` False) are all but the last of each typed fact's; ``heldout`` asks the last alone. For training, a
    description that answers none of the questions made gets its unanswerable one ``ALONE_UNANSWERABLE`` of the time."""
    found = facts(content)
    choose = (lambda asks: len(asks) - 1) if heldout else (lambda asks: rng.randrange(len(asks) - 1))
    out: list[Pair] = []
    for fact, value in found.items():
        q, a = typed_question(fact, value, title, choose(TYPED[fact][1]))
        out.append(Pair("fact", q, a, fact))
    if not heldout:  # echo questions and claims teach reading; evaluation asks people's kinds of question alone
        for s in rng.sample(sentences(content), min(3, len(sentences(content)))):
            asked = echo(s, rng)
            if asked:
                out.append(Pair("fact", *asked, "echo"))
            out.extend([checked] if (checked := claim(s, others, rng)) else [])
    missing = [f for f in TYPED if f not in found and f != "count"]
    if missing:
        fact = rng.choice(missing)
        out.append(Pair("unanswerable", typed_question(fact, "", title, choose(TYPED[fact][1]))[0], NOT_SAID, fact))
    else:
        out.append(Pair("unanswerable", UNANSWERED[choose(UNANSWERED)].format(title=title), NOT_SAID, "price"))
    out.extend(yesno(title, found, others, rng, heldout))
    if not heldout and all(p.kind == "unanswerable" for p in out) and rng.random() >= ALONE_UNANSWERABLE:
        return []  # else "does not say" would be a third of what the model reads, and its answer when unsure
    by_kind = {kind: [p for p in out if p.kind == kind] for kind in KIND_SHARE}
    for pool in by_kind.values():
        rng.shuffle(pool)
    chosen: list[Pair] = []
    while len(chosen) < n and any(by_kind.values()):  # each pair's kind drawn by KIND_SHARE among those left
        kinds = [k for k, pool in by_kind.items() if pool]
        chosen.append(by_kind[rng.choices(kinds, [KIND_SHARE[k] for k in kinds])[0]].pop())
    return chosen


YESNO = {  # a yes/no question about a typed fact, in phrasings whose last training never uses (HELDOUT)
    "author": ("Is {title} by {value}?", "Did {value} write {title}?"),
    "place": ("Is {title} set in {value}?", "Does {title} take place in {value}?"),
    "material": ("Is {title} made of {value}?", "Is {title} made from {value}?"),
    "year": ("Is {title} about {value}?", "Does {title} mention the year {value}?"),
    "includes": ("Does {title} include {value}?", "Does {title} come with {value}?"),
}


def yesno(title: str, found: dict[str, str], others: list[dict], rng: random.Random, heldout: bool = False) -> list[Pair]:
    """A yes/no question about one fact the description gives: true with its value, or false with another
    product's value of the same fact (where one differs)."""
    usable = [f for f in found if f in YESNO]
    if not usable:
        return []
    fact = rng.choice(usable)
    asks = YESNO[fact]
    ask = asks[HELDOUT] if heldout else asks[rng.randrange(len(asks) - 1)]
    false = [v for o in others if (v := facts(o["content"]).get(fact)) and normalize(v) != normalize(found[fact])]
    if false and rng.random() < 0.5:
        return [Pair("yesno", ask.format(title=title, value=rng.choice(false)), "No.", fact)]
    return [Pair("yesno", ask.format(title=title, value=found[fact]), "Yes.", fact)]


# --- Scoring, as SQuAD's official script does -------------------------------------------------------------------

def normalize(text: str) -> str:
    """Lower case, no punctuation, no articles (a, an, the), whitespace collapsed: SQuAD's normalisation."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def _f1(prediction: str, gold: str) -> float:
    p, g = normalize(prediction).split(), normalize(gold).split()
    common = sum((Counter(p) & Counter(g)).values())
    if not common:
        return float(p == g)
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def exact(prediction: str, golds: list[str]) -> float:
    return float(any(normalize(prediction) == normalize(g) for g in golds))


def f1(prediction: str, golds: list[str]) -> float:
    return max((_f1(prediction, g) for g in golds), default=0.0)


def contains(prediction: str, golds: list[str]) -> float:
    """Whether some gold answer appears, normalised, inside the normalised prediction (whole words)."""
    said = f" {normalize(prediction)} "
    return float(any(normalize(g) and f" {normalize(g)} " in said for g in golds))


def says_not_said(prediction: str) -> bool:
    """Whether an answer says the description does not give it (right for an unanswerable question)."""
    return bool(_NOT_SAID_RE.search(prediction))


def scored(prediction: str, kind: str, golds: list[str]) -> dict:
    """One answer's scores: exact, f1 and contains against ``golds``; an unanswerable one is right (all three 1)
    when it says the description does not say, a yes/no one by its first word."""
    if kind == "unanswerable":
        right = float(says_not_said(prediction))
        return {"exact": right, "f1": right, "contains": right, "words": len(prediction.split())}
    if kind == "yesno":
        first = normalize(prediction).split()[:1]
        right = float(first == normalize(golds[0]).split()[:1])
        return {"exact": right, "f1": right, "contains": right, "words": len(prediction.split())}
    return {"exact": exact(prediction, golds), "f1": round(f1(prediction, golds), 4),
            "contains": contains(prediction, golds), "words": len(prediction.split())}


def summary(records: list[dict]) -> dict:
    """Mean scores of answers (records with kind and the :func:`scored` keys), in all and per kind; the median
    answer length in words."""
    import statistics

    def of(rs):
        if not rs:
            return {}
        return {"exact": round(sum(r["exact"] for r in rs) / len(rs), 4), "f1": round(sum(r["f1"] for r in rs) / len(rs), 4),
                "contains": round(sum(r["contains"] for r in rs) / len(rs), 4),
                "words_p50": statistics.median(r["words"] for r in rs), "questions": len(rs)}

    out = {"all": of(records)}
    for kind in sorted({r["kind"] for r in records}):
        out[kind] = of([r for r in records if r["kind"] == kind])
    return out
