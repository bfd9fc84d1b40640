"""Deterministic generator of realistic AmazonTitles-1.3MM ``trn.json`` lines.

The real file cannot be downloaded here, so the default pipeline and the tests run on products made by
this module. Each line has the real keys (uid, title, content, target_ind, target_rel).

The descriptions are meant to be as hard as the real file's, where two descriptions share little more
than function words (ROUGE-L ≈ 0.10 between two random real ones; ``benchmarks/synth_realism.py``):

- **Kinds of product as in the real file**: mostly book blurbs (editorial reviews, plots, author bios,
  review quotes with their source), then music and film, then merchandise (clothing, toys, electronics,
  kitchen).
- **Free text, not a few templates**: each sentence is drawn from many frames whose slots come from
  Faker (names, jobs, cities, companies, years) and from each product's own small vocabulary of topic
  words, with free clauses of English words in between. What a description says is that product's own,
  so a model answers it well only if it has learned that product.
- **Tied to the title about as often as in the real file**: about 60% of descriptions name a word of
  their title (the author, the subject, the brand).
- **The real file's noise**: HTML entities for non-ASCII, empty descriptions, "--This text refers to…"
  boilerplate, HTML tags, URLs and e-mails, exact duplicates, repeated titles, descriptions equal to
  their title, lengths log-normal around a median of ~450 characters with a tail up to ~30,000.

The same seed gives the same records for the pinned Faker version (requirements.txt).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from typing import Callable, Iterator

from faker import Faker
from wonderwords import RandomWord

# Word pools of our own; names, places, jobs, companies and free words come from Faker.
GENRES = ("novel|memoir|mystery|thriller|cookbook|biography|history|collection of stories|field guide|"
          "picture book|study|travel guide|romance|fantasy epic|workbook|anthology|essay collection").split("|")
ROLES = ("historian|journalist|novelist|chef|poet|professor|former editor|critic|naturalist|painter|"
         "psychologist|folklorist|physician|archaeologist|columnist").split("|")
ADJS = ("lively|compelling|luminous|unsparing|witty|exhaustive|tender|brisk|meticulous|haunting|"
        "accessible|ambitious|playful|scholarly|lavishly illustrated|gripping|quiet|sprawling|"
        "practical|provocative|charming|definitive").split("|")
OFFERS = ("offers|delivers|paints|traces|assembles|weaves|reconstructs|presents|follows|explores|"
          "celebrates|revisits|examines").split("|")
PORTRAITS = ("a portrait of|an account of|a history of|a meditation on|a guide to|a defence of|"
             "a celebration of|an inquiry into|a chronicle of|the story of").split("|")
EVENTS = ("inherits a house|loses her job|finds a letter|witnesses a crime|returns home|joins an expedition|"
          "falls ill|opens a bakery|receives a strange package|is left at the altar|discovers a tunnel|"
          "takes in a stray dog|wins the lottery|buries a secret").split("|")
OUTLETS = ("Publishers Weekly|Kirkus Reviews|Library Journal|Booklist|School Library Journal|"
           "The New York Times Book Review|The Washington Post|The Times|The Observer|Entertainment Weekly|"
           "The Boston Globe|Chicago Tribune|Rolling Stone|Variety|The Independent").split("|")
PRAISE = ("Astonishingly original|Wise and funny|A marvel|Utterly absorbing|Beautifully written|"
          "A triumph|Essential reading|Impossible to put down|Richly imagined|Hugely entertaining|"
          "Moving and unforgettable|Sharp as a tack|A delight from start to finish").split("|")
FORMATS = ("paperback|hardcover|mass market paperback|audio CD|large print edition|spiral-bound edition|"
           "board book|library binding").split("|")
MEDIA = ("album|live recording|compilation|soundtrack|debut album|box set|remastered edition|concert film|"
         "documentary|feature film|miniseries|season").split("|")
STYLES = ("jazz|bluegrass|chamber music|punk|soul|opera|gospel|film noir|comedy|western|drama|"
          "animated feature|folk|electronic music").split("|")
GOODS = {
    "clothing": ("T-Shirt|Hoodie|Ballet Tutu|Cargo Pants|Rain Jacket|Wool Socks|Denim Skirt|Polo Shirt|"
                 "Cardigan|Leggings|Sun Hat|Pajama Set").split("|"),
    "toys": ("Building Set|Wooden Puzzle|Plush Bear|Race Car Track|Doll House|Art Kit|Train Set|Board Game|"
             "Kite|Marble Run|Tea Set|Robot Kit").split("|"),
    "electronics": ("Bluetooth Speaker|USB-C Charger|Wireless Mouse|Headphones|Memory Card|Wi-Fi Router|"
                    "Power Bank|HDMI Cable|Webcam|Desk Lamp|Keyboard|Dash Cam").split("|"),
    "kitchen": ("Cast Iron Skillet|Chef's Knife|Storage Containers|Stand Mixer|Rice Cooker|Coffee Grinder|"
                "Cutting Board|Mixing Bowls|Tea Kettle|Spice Rack|Waffle Maker|Salad Spinner").split("|"),
}
MATERIALS = ("cotton|polyester|merino wool|denim|fleece|nylon|beech wood|ABS plastic|aluminium|silicone|"
             "cast iron|stainless steel|borosilicate glass|bamboo|ceramic|recycled paper").split("|")
QUALITIES = ("sturdy|durable|lightweight|breathable|versatile|reliable|compact|stylish|comfortable|practical|"
             "easy to clean|long-lasting|rugged|elegant|quiet|washable").split("|")
BOILERPLATE = [
    "--This text refers to thePaperbackedition.",
    "--This text refers to theHardcoveredition.",
    "--This text refers to an out of print or unavailable edition of this title.",
]
# Non-ASCII and markup as the real file stores them.
ENTITY_STYLES = [("'", "&#8217;"), ("'", "&#x2019;"), ("&", "&amp;"), (" - ", " &mdash; "), (" ", "&#160;"),
                 ('"', "&#x201C;"), ("...", "&#x2026;")]
KINDS = {"book": 0.6, "media": 0.15, "goods": 0.25}  # the real file is mostly books

_NOISE = {  # probability of each kind of noise per product; tuned to the real file's proportions
    "empty": 0.38, "short": 0.12, "entities": 0.30, "tags": 0.06, "url": 0.03, "email": 0.02,
    "duplicate": 0.02, "repeat_title": 0.015, "title_is_content": 0.01, "very_long": 0.003,
}
MENTIONS_TITLE = 0.5  # books and media whose description names their title's words (+ all goods: ≈ 60%, as real)


_NOUNS, _VERBS, _ADJECTIVES = (RandomWord().filter(include_categories=[c]) for c in ("noun", "verb", "adjective"))
_PREPS = "of|in|with|for|from|about|into|beyond|among|after|without|under|through|across".split("|")
_LINKS = "and|but|while|as|because|until|although|so|since|before|whereas".split("|")


def _third_person(verb: str) -> str:
    if verb.endswith(("ss", "ch", "x", "sh", "zz", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    return verb if verb.endswith("ed") else verb + "s"


class _Product:
    """One product's own world: its words, people and places, from which its title and text are drawn."""

    def __init__(self, rng: random.Random, fake: Faker, kind: str):
        self.rng, self.fake, self.kind = rng, fake, kind
        self.topic = rng.sample(_NOUNS, 5)  # the nouns this product's text keeps coming back to
        self.traits = rng.sample(_ADJECTIVES, 2)
        self.author = fake.name()
        self.hero = fake.first_name()
        self.place = rng.choice([fake.city(), fake.state(), fake.country()])
        self.year = rng.randint(1850, 2012)
        self.mentions = rng.random() < MENTIONS_TITLE
        if kind == "goods":
            self.category = rng.choice(list(GOODS))
            self.brand = fake.last_name() + rng.choice(["", " & Co.", " Labs", " Outdoors", " Home", " Kids"])
            self.item = rng.choice(GOODS[self.category])
            self.material = rng.choice(MATERIALS)
            self.color = fake.color_name()

    def word(self) -> str:
        return self.rng.choice(self.topic)

    def noun(self) -> str:
        return self.word() if self.rng.random() < 0.4 else self.rng.choice(_NOUNS)

    def adjective(self) -> str:
        return self.rng.choice(self.traits) if self.rng.random() < 0.3 else self.rng.choice(_ADJECTIVES)

    def phrase(self) -> str:
        """A noun phrase of the product's own topic words: 'the harbor of wild notebooks'."""
        r, w = self.rng, self.word
        return r.choice([f"the {w()} of {w()}", f"{w()} and {w()}", f"a {self.adjective()} {w()}",
                         f"the {self.adjective()} {w()}", f"{self.place}'s {w()}"])

    def np(self) -> str:
        """A noun phrase: '{det} {adjective} {noun} ({preposition} {det} {noun})'."""
        r = self.rng
        det = r.choice(["the", "the", "a", "its", "their", "every", "this", "no", "one", ""])
        head = f"{self.adjective()} {self.noun()}" if r.random() < 0.5 else self.noun()
        if det == "a" and head[0] in "aeiou":
            det = "an"
        out = f"{det} {head}".strip()
        if r.random() < 0.3:
            out += f" {r.choice(_PREPS)} the {self.noun()}"
        return out

    def free(self, lo: int = 6, hi: int = 18) -> str:
        """A free clause of about lo..hi words: subject, verb, object, prepositions, linked clauses."""
        r, words = self.rng, []
        target = r.randint(lo, hi)
        while len(words) < target:
            if words:
                words.append(r.choice(_LINKS))
            clause = [self.np(), _third_person(r.choice(_VERBS)), self.np()]
            if r.random() < 0.5:
                clause += [r.choice(_PREPS), self.np()]
            words += " ".join(clause).split()
        return " ".join(words)

    def title(self) -> str:
        r = self.rng
        if self.kind == "goods":
            variant = r.choice(["", f", Pack of {r.randint(2, 12)}", f", Size {r.randint(2, 14)}",
                                f" Model {r.choice('ABCDXZ')}{r.randint(100, 999)}", f" ({self.material.title()})"])
            return f"{self.brand} {r.choice(QUALITIES).title()} {self.item} {self.color}{variant}"
        if self.mentions:  # the title's words are the ones the description talks about
            words, hero, author, place = self.topic, self.hero, self.author, self.place
        else:  # a title whose words the description never uses, as for 40% of real products
            words, hero, author, place = r.sample(_NOUNS, 3), self.fake.first_name(), self.fake.name(), self.fake.city()
        w = lambda: r.choice(words).title()  # noqa: E731
        head = r.choice([f"The {w()} of {w()}", f"{w()} {w()}", f"A {w()} in {place}", f"{hero}'s {w()}", f"The {w()}"])
        if self.kind == "media":
            return head + r.choice(["", " [DVD]", " [VHS]", " (Remastered)", f" - {author}", " [Blu-ray]"])
        return head + r.choice(["", ": A Novel", f": The {w()} and the {w()}", f" ({w()}, Book {r.randint(1, 9)})",
                                f" - {author}", f": The {w()} Cookbook", " (Classics)"])

    def opening(self, title: str) -> str:
        """The first sentence; names a word of the title for MENTIONS_TITLE of the products."""
        r, core = self.rng, title.split(":")[0].split(" (")[0].split(" [")[0].split(" - ")[0]
        if not self.mentions:
            return next(self.sentences())
        if self.kind == "goods":
            return r.choice([f"The {self.item.lower()} from {self.brand} is made of {self.material}.",
                             f"{self.brand} makes this {self.color.lower()} {self.item.lower()} for {self.free(3, 6)}.",
                             f"Meet the {core}: {self.free(5, 10)}."])
        return r.choice([f"{core} is {r.choice(['a', 'the'])} {r.choice(ADJS)} {r.choice(GENRES + MEDIA)} about {self.phrase()}.",
                         f"In {core}, {self.author} {r.choice(OFFERS)} {r.choice(PORTRAITS)} {self.phrase()}.",
                         f"{core} {r.choice(['returns', 'arrives', 'is back'])} {self.free(4, 9)}."])

    def sentences(self) -> Iterator[str]:
        """Endless sentences for this product's kind; each kind of sentence once before any comes back."""
        frames = {"book": self._book, "media": self._media, "goods": self._goods}[self.kind]()
        while True:
            self.rng.shuffle(frames)
            for frame in frames:
                yield frame()

    def _quote(self) -> str:
        r = self.rng
        source = r.choice([r.choice(OUTLETS), self.fake.name(), f"{self.fake.name()}, author of {self.phrase().title()}"])
        return f'"{r.choice(PRAISE)}... {self.free(5, 14).capitalize()}." --{source}'

    def _book(self) -> list[Callable[[], str]]:
        r, f = self.rng, self.fake
        return [
            lambda: f"In this {r.choice(ADJS)} {r.choice(GENRES)}, {r.choice(ROLES)} {self.author} "
                    f"({self.phrase().title()}) {r.choice(OFFERS)} {r.choice(PORTRAITS)} {self.phrase()}.",
            lambda: f"When {self.hero}, a {f.job().lower()} in {self.place}, {r.choice(EVENTS)}, "
                    f"{r.choice(['she', 'he', 'they'])} must {self.free(4, 9)}.",
            lambda: f"{self.author} is {r.choice(['a', 'an award-winning', 'a former'])} {f.job().lower()} and the author "
                    f"of {r.randint(2, 40)} books, including {self.phrase().title()}. "
                    f"{r.choice(['She', 'He'])} lives in {f.city()}, {f.state()}.",
            self._quote,
            lambda: f"Praise for {self.phrase().title()}: {self._quote()}",
            lambda: f"Set in {self.place} in {self.year}, {self.free(8, 16)}.",
            lambda: f"This {r.choice(FORMATS)} has {r.randint(96, 880)} pages, {r.choice(['a', 'an updated', 'no'])} "
                    f"index and {r.randint(0, 120)} {r.choice(['photographs', 'recipes', 'maps', 'illustrations'])}.",
            lambda: f"{self.free(8, 20).capitalize()}.",
            lambda: f"{self.free(6, 14).capitalize()}, {r.choice(['and', 'but', 'while', 'as'])} {self.free(5, 12)}.",
            lambda: f"From {self.phrase()} to {self.phrase()}, {self.free(5, 12)}.",
        ]

    def _media(self) -> list[Callable[[], str]]:
        r, f = self.rng, self.fake
        return [
            lambda: f"{r.choice(['Directed by', 'Produced by', 'Performed by', 'Starring'])} {self.author}, "
                    f"this {r.choice(ADJS)} {r.choice(STYLES)} {r.choice(MEDIA)} {self.free(5, 12)}.",
            lambda: "Tracks: " + "; ".join(f"{i}. {self.phrase().title()}" for i in range(1, r.randint(3, 9))) + ".",
            lambda: f"Recorded in {f.city()} in {self.year + r.randint(0, 40)}, {self.free(6, 14)}.",
            lambda: f"Running time: {r.randint(40, 190)} minutes. Region {r.randint(1, 4)}. {r.choice(['Color', 'Black and white'])}.",
            lambda: f"With {f.name()} and {f.name()} as {self.phrase()}.",
            self._quote,
            lambda: f"{self.free(8, 20).capitalize()}.",
            lambda: f"{self.free(6, 12).capitalize()}, {r.choice(['and', 'but', 'so'])} {self.free(5, 12)}.",
        ]

    def _goods(self) -> list[Callable[[], str]]:
        r, f = self.rng, self.fake
        n, b = self.item.lower(), self.brand
        return [
            lambda: f"It measures {r.randint(2, 30)}.{r.randint(0, 9)} x {r.randint(2, 20)}.{r.randint(0, 9)} inches "
                    f"and weighs {r.randint(2, 90)} ounces.",
            lambda: f"Designed in {f.city()} and made in {f.country()}.",
            lambda: f"Features: {r.choice(QUALITIES)} {self.material}; {self.free(2, 4)}; {self.free(2, 4)}.",
            lambda: f'"{self.free(4, 10).capitalize()}" --{f.first_name()}, verified buyer',
            lambda: f"Great for {self.free(2, 5)}, {self.free(2, 5)} and {self.free(2, 5)}.",
            lambda: f"Backed by a {r.randint(1, 10)}-year {b} warranty (model {r.choice('ABCDEFGH')}{r.randint(1000, 9999)}).",
            lambda: f"{r.choice(['Machine wash cold', 'Hand wash only', 'Wipe clean', 'Dishwasher safe', 'Charge fully before first use'])}; "
                    f"{self.free(4, 9)}.",
            lambda: f"{f.catch_phrase()} for {self.free(3, 8)}.",
            lambda: f"{self.free(8, 18).capitalize()}.",
            lambda: f"Our {n} {self.free(5, 12)}.",
        ]


def _content(product: _Product, title: str, target_chars: int) -> str:
    parts = [product.opening(title)]
    n = len(parts[0])
    for sentence in product.sentences():
        if n >= target_chars:
            break
        parts.append(sentence)
        n += len(sentence) + 1
    return " ".join(parts)


def _add_noise(rng: random.Random, text: str, product: _Product) -> str:
    if rng.random() < _NOISE["entities"]:
        # "&" first: escaping it after another entity would write "&amp;#160;", which the real file never holds
        for plain, entity in sorted(rng.sample(ENTITY_STYLES, 2), key=lambda style: style[0] != "&"):
            text = text.replace(plain, entity, 2)
    site = product.author.split()[-1].lower() if product.kind != "goods" else product.brand.split()[0].lower()
    if rng.random() < _NOISE["tags"]:
        text = f"<p><b>{product.author}</b><br>{text}</p>"
    if rng.random() < _NOISE["url"]:
        text += f" Visit http://www.{site}.com/ for more."
    if rng.random() < _NOISE["email"]:
        text += f" Questions? Email info@{site}.com"
    if product.kind == "book" and rng.random() < 0.4:
        text += rng.choice(BOILERPLATE)
    return text


def records(n: int, seed: int) -> Iterator[dict]:
    """Yield ``n`` realistic trn.json records, the same ones for the same seed."""
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    kinds, weights = list(KINDS), list(KINDS.values())
    previous: list[dict] = []
    for i in range(n):
        uid = f"{rng.randrange(10**10):010d}" if rng.random() < 0.3 else f"B{rng.randrange(36**9):09X}"[:10]
        targets = sorted(rng.sample(range(1_305_265), rng.randint(1, 8)))
        u = rng.random()
        if previous and u < _NOISE["duplicate"]:  # same product listed twice
            rec = {"uid": uid, **rng.choice(previous)}
        elif previous and u < _NOISE["duplicate"] + _NOISE["repeat_title"]:  # same title, other text
            old = rng.choice(previous)
            rec = {"uid": uid, "title": old["title"], "content": old["content"][: len(old["content"]) // 2]}
        else:
            product = _Product(rng, fake, rng.choices(kinds, weights)[0])
            title = product.title()
            r = rng.random()
            if r < _NOISE["empty"]:
                content = ""
            elif r < _NOISE["empty"] + _NOISE["title_is_content"]:
                content = title
            else:
                if r < _NOISE["empty"] + _NOISE["title_is_content"] + _NOISE["short"]:
                    target = rng.randint(20, 99)
                elif rng.random() < _NOISE["very_long"]:
                    target = rng.randint(5_000, 30_000)
                else:  # log-normal body: median ≈ 450 characters, as in the real file
                    target = int(min(30_000, math.exp(rng.gauss(math.log(450), 0.75))))
                content = _add_noise(rng, _content(product, title, target), product)
            rec = {"uid": uid, "title": title, "content": content}
        rec["target_ind"] = targets
        rec["target_rel"] = [1.0] * len(targets)
        if len(previous) < 500 and rec["content"]:
            previous.append({"title": rec["title"], "content": rec["content"]})
        elif rec["content"] and rng.random() < 0.01:
            previous[rng.randrange(len(previous))] = {"title": rec["title"], "content": rec["content"]}
        yield rec


def write(path: str, n: int, seed: int) -> None:
    """Write ``n`` records as JSON lines; gzip-compressed when ``path`` ends in ``.gz``."""
    from .files import atomic_path

    with atomic_path(path) as tmp, contextlib.ExitStack() as stack:
        if str(path).endswith(".gz"):
            import io

            from isal import igzip

            # No name and no write time in the gzip header: the same records make the same bytes (and DVC hash).
            raw = stack.enter_context(open(tmp, "wb"))
            f = io.TextIOWrapper(igzip.IGzipFile("", "wb", compresslevel=1, fileobj=raw, mtime=0), encoding="utf-8")
        else:
            f = open(tmp, "w", encoding="utf-8")
        with f:
            for rec in records(n, seed):
                f.write(json.dumps(rec, ensure_ascii=True) + "\n")
