"""Deterministic generator of realistic AmazonTitles-1.3MM ``trn.json`` lines.

The real file cannot be downloaded here, so the default pipeline and the tests run on products made by
this module. Each line has the real keys (uid, title, content, target_ind, target_rel); titles and
descriptions share their words (brand, colour, material, product noun) so a model can learn the
title → description mapping, while most of a description is that product's own facts (names, numbers,
places, a plot, review quotes), so it cannot be guessed from other products; and the real file's noise is
reproduced: HTML entities for non-ASCII,
empty descriptions, "--This text refers to…" boilerplate, HTML tags, URLs and e-mails, exact
duplicates, repeated titles, descriptions equal to their title, and a long tail up to ~30,000 chars.
"""

from __future__ import annotations

import json
import math
import random
from typing import Iterator

CATEGORIES = {
    "clothing": {
        "brands": ["Hanes", "Levi's", "Carhartt", "Columbia", "Champion", "Dickies", "Wrangler", "Gildan"],
        "nouns": ["T-Shirt", "Hoodie", "Ballet Tutu", "Cargo Pants", "Rain Jacket", "Wool Socks", "Denim Skirt", "Polo Shirt"],
        "adjs": ["Girls", "Boys", "Men's", "Women's", "Kids", "Unisex"],
        "features": ["a relaxed fit", "reinforced seams", "a tag-free collar", "two side pockets", "an elastic waistband", "a soft brushed lining"],
        "materials": ["cotton", "polyester", "merino wool", "denim", "fleece", "nylon"],
        "uses": ["everyday wear", "dance class", "hiking", "school", "the gym", "chilly mornings"],
    },
    "toys": {
        "brands": ["LEGO", "Melissa & Doug", "Hasbro", "Mattel", "Playmobil", "Fisher-Price", "VTech", "Crayola"],
        "nouns": ["Building Set", "Wooden Puzzle", "Plush Bear", "Race Car Track", "Doll House", "Art Kit", "Train Set", "Board Game"],
        "adjs": ["Deluxe", "Classic", "Mini", "Junior", "Ultimate", "Rainbow"],
        "features": ["over 100 pieces", "rounded safe edges", "a storage box", "non-toxic paints", "a step-by-step guide", "batteries included"],
        "materials": ["wood", "ABS plastic", "plush fabric", "cardboard", "metal"],
        "uses": ["ages 3 and up", "family game night", "creative play", "birthday gifts", "rainy days", "travel"],
    },
    "electronics": {
        "brands": ["Sony", "Anker", "Logitech", "Samsung", "JBL", "Belkin", "TP-Link", "SanDisk"],
        "nouns": ["Bluetooth Speaker", "USB-C Charger", "Wireless Mouse", "Noise Cancelling Headphones", "Memory Card", "Wi-Fi Router", "Power Bank", "HDMI Cable"],
        "adjs": ["Portable", "Compact", "Fast", "Pro", "Ultra Slim", "Waterproof"],
        "features": ["a 20-hour battery", "Bluetooth 5.3", "fast charging", "a two-year warranty", "plug-and-play setup", "an LED indicator"],
        "materials": ["aluminium", "ABS plastic", "braided nylon", "silicone"],
        "uses": ["home offices", "travel", "gaming", "streaming music", "laptops and phones", "outdoor parties"],
    },
    "kitchen": {
        "brands": ["OXO", "Cuisinart", "Lodge", "Pyrex", "KitchenAid", "Zojirushi", "Hamilton Beach", "Rubbermaid"],
        "nouns": ["Cast Iron Skillet", "Chef's Knife", "Glass Storage Containers", "Stand Mixer", "Rice Cooker", "Coffee Grinder", "Cutting Board", "Mixing Bowls"],
        "adjs": ["Pre-Seasoned", "Stainless", "Nonstick", "Professional", "Large", "12-Inch"],
        "features": ["a dishwasher-safe design", "an ergonomic handle", "even heat distribution", "snap-on lids", "a one-touch control", "a non-slip base"],
        "materials": ["cast iron", "stainless steel", "borosilicate glass", "bamboo", "ceramic"],
        "uses": ["searing steaks", "meal prep", "baking bread", "everyday cooking", "busy weeknights", "small kitchens"],
    },
    "books": {
        "brands": ["Jane Austen", "Mark Twain", "Agatha Christie", "Stephen King", "Mary Shelley", "Charles Dickens", "J. R. R. Tolkien", "Toni Morrison"],
        "nouns": ["Garden", "River", "Detective", "Winter", "Kingdom", "Lighthouse", "Orchard", "Journey"],
        "adjs": ["Secret", "Last", "Silent", "Forgotten", "Golden", "Midnight"],
        "features": ["an unforgettable heroine", "a twist ending", "vivid historical detail", "a new introduction", "illustrations throughout", "a reading group guide"],
        "materials": ["paperback", "hardcover", "mass market paperback", "audio CD"],
        "uses": ["book clubs", "young readers", "fans of mysteries", "long flights", "classic literature lovers", "students"],
    },
}
COLORS = ["Neon Pink", "Navy Blue", "Black", "Forest Green", "Charcoal Grey", "Red", "White", "Sky Blue"]
BOILERPLATE = [
    "--This text refers to thePaperbackedition.",
    "--This text refers to theHardcoveredition.",
    "--This text refers to an out of print or unavailable edition of this title.",
]
# Non-ASCII and markup as the real file stores them.
ENTITY_STYLES = [("'", "&#8217;"), ("'", "&#x2019;"), ("&", "&amp;"), (" - ", " &mdash; "), (" ", "&#160;")]

_NOISE = {  # probability of each kind of noise per product; tuned to the real file's proportions
    "empty": 0.38, "short": 0.12, "entities": 0.30, "tags": 0.06, "url": 0.03, "email": 0.02,
    "duplicate": 0.02, "repeat_title": 0.015, "title_is_content": 0.01, "very_long": 0.003,
}


def _title(rng: random.Random, cat: str, v: dict) -> tuple[str, dict]:
    slots = {
        "brand": rng.choice(v["brands"]), "noun": rng.choice(v["nouns"]), "adj": rng.choice(v["adjs"]),
        "color": rng.choice(COLORS), "material": rng.choice(v["materials"]),
    }
    if cat == "books":
        place = rng.choice(["", " of " + rng.choice(["Avonlea", "the North", "Summer", "Lost Time", "Bramble Hill"])])
        title = f"The {slots['adj']} {slots['noun']}{place}" + rng.choice(
            ["", ": A Novel", " (Classics)", f" - {slots['brand']}", f", Book {rng.randint(1, 9)}"])
    else:
        variant = rng.choice(["", f", Pack of {rng.randint(2, 12)}", f", Size {rng.randint(2, 14)}",
                              f" Model {rng.choice('ABCDXZ')}{rng.randint(100, 999)}"])
        title = f"{slots['brand']} {slots['adj']} {slots['noun']} {slots['color']}{variant}"
    return title, slots


# Word pools for product-specific free text. Each description draws its own facts (names, numbers,
# places, plot) from these, so, as in the real file, most of it cannot be guessed from the title or from
# other products: a model that answers it well has learned that product.
FIRST = ("Ada Ben Clara Dev Elena Felix Grace Hugo Iris Jonah Kira Leo Maya Nico Olive Pavel Quinn Rosa Silas Tess "
         "Uma Victor Wren Yusuf Zoe Amara Bram Celia Dario Esme").split()
LAST = ("Hale Moreno Quill Sato Brennan Okafor Lindqvist Marsh Duval Petrov Ashby Calloway Ferris Ingram Kowalski "
        "Lowell Navarro Pryce Reyes Thorne Vance Whitlock Yates Abbott Bellamy").split()
PLACES = ("Cornwall|Lisbon|a fishing village in Maine|1920s Shanghai|the Scottish Highlands|Depression-era Kansas|"
          "a Paris bookshop|post-war Vienna|the Australian outback|a Brooklyn brownstone|Kyoto|the Yukon|"
          "a Mississippi river town|Victorian London|an island off Norway").split("|")
JOBS = ("a widowed baker|a retired detective|a young cartographer|a disgraced surgeon|an orphaned violinist|"
        "a lighthouse keeper|a schoolteacher|a failed novelist|a botanist|a war photographer|a stable hand|"
        "a code breaker").split("|")
FINDS = ("a locked diary|a stranger's letter|a map with no names|her late mother's recipe box|a stolen painting|"
         "a child who should not exist|a body in the orchard|a forgotten family fortune|a secret society|"
         "a coded message in the church register").split("|")
GOALS = ("decide whom to trust|confront the past|protect the people she loves|uncover what really happened|"
         "choose between duty and desire|outrun a dangerous enemy|rebuild a shattered family|"
         "keep a promise made decades ago").split("|")
PRAISE = ("A gripping, beautifully written novel.|Utterly absorbing from the first page.|"
          "A triumph of storytelling.|Funny, wise and heartbreaking.|I could not put it down.|"
          "Lyrical and haunting.|A page-turner with real heart.|Sharp, surprising and deeply moving.").split("|")
OUTLETS = ("Publishers Weekly|Kirkus Reviews|Library Journal|The New York Times Book Review|Booklist|"
           "The Guardian|School Library Journal").split("|")
CITIES = "Portland|Austin|Toronto|Dublin|Edinburgh|Santa Fe|Melbourne|Vermont|Seattle|Asheville".split("|")
MAKERS = "Vietnam|China|Portugal|Mexico|Taiwan|Germany|the USA|India|Italy|Poland".split("|")
QUALITIES = ("sturdy durable lightweight breathable versatile reliable compact stylish comfortable practical "
             "easy-to-clean long-lasting premium rugged elegant").split()
VERBS = "keeps|holds|protects|handles|fits|supports|stores|cleans up|travels|stacks".split("|")
EXTRAS = ("a carrying pouch|a quick-start guide|spare parts|a gift box|a lifetime guarantee|two replacement tips|"
          "a wall mount|a travel case|a cleaning cloth|a recipe booklet|a 30-day return policy").split("|")


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _sentences(rng: random.Random, cat: str, v: dict, s: dict) -> Iterator[str]:
    """Endless stream of description sentences about the titled product, most of them its own facts."""
    noun = s["noun"].lower()
    if cat == "books":
        hero, place, job = rng.choice(FIRST), rng.choice(PLACES), rng.choice(JOBS)
        yield f"{s['brand']}'s {s['adj'].lower()} story of the {noun} is set in {place}."
        pool = [
            lambda: f"When {hero} {rng.choice(LAST)}, {job}, finds {rng.choice(FINDS)}, she must {rng.choice(GOALS)}.",
            lambda: f"Over one {rng.choice(['summer', 'winter', 'autumn', 'spring'])} in {place}, "
                    f"{hero} and {_name(rng)} {rng.choice(['fall in love', 'become rivals', 'share a secret', 'lose everything'])}.",
            lambda: f'"{rng.choice(PRAISE)}" --{rng.choice(OUTLETS)}',
            lambda: f'"{rng.choice(PRAISE)} {s["brand"]} at the height of her powers." --{_name(rng)}, author of '
                    f"The {rng.choice(v['adjs'])} {rng.choice(v['nouns'])}",
            lambda: f"{s['brand']} is the author of {rng.randint(2, 31)} books and lives in {rng.choice(CITIES)} "
                    f"with {rng.choice(['her husband', 'two dogs', 'her family', 'a very old cat'])}.",
            lambda: f"This {s['material']} edition has {rng.randint(180, 720)} pages and {rng.choice(v['features'])}.",
            lambda: f"Chapter {rng.randint(1, 30)} opens with {hero} {rng.choice(['alone', 'at the harbour', 'in the attic', 'on a night train'])}, "
                    f"and nothing is the same again.",
        ]
    else:
        size = f"{rng.randint(2, 30)}.{rng.randint(0, 9)} x {rng.randint(2, 20)}.{rng.randint(0, 9)} inches"
        yield f"This {s['color'].lower()} {noun} from {s['brand']} is made of {s['material']}."
        pool = [
            lambda: f"It measures {size} and weighs {rng.randint(2, 90)} ounces.",
            lambda: f"Designed in {rng.choice(CITIES)} and made in {rng.choice(MAKERS)}.",
            lambda: f"The {rng.choice(QUALITIES)} {noun} {rng.choice(VERBS)} well and comes with {rng.choice(EXTRAS)}.",
            lambda: f"It features {rng.choice(v['features'])} and {rng.choice(v['features'])}.",
            lambda: "Great for {}; {} and {}.".format(rng.choice(v["uses"]), *rng.sample(QUALITIES, 2)),
            lambda: f'"{rng.choice(["Exactly as described", "Bought a second one", "Better than expected", "My kids love it"])}" '
                    f"--{rng.choice(FIRST)}, verified buyer",
            lambda: f"Backed by a {rng.randint(1, 10)}-year {s['brand']} warranty (model {rng.choice('ABCDEFGH')}{rng.randint(1000, 9999)}).",
            lambda: f"Features: {rng.choice(QUALITIES)} {s['material']}; {rng.choice(v['features'])}; {rng.choice(EXTRAS)}.",
        ]
    while True:  # each kind of sentence once before any comes back, as a written description would
        rng.shuffle(pool)
        for sentence in pool:
            yield sentence()


def _content(rng: random.Random, cat: str, v: dict, slots: dict, target_chars: int) -> str:
    parts, n = [], 0
    for sentence in _sentences(rng, cat, v, slots):
        if n >= target_chars:
            break
        parts.append(sentence)
        n += len(sentence) + 1
    return " ".join(parts)


def _add_noise(rng: random.Random, text: str, cat: str, slots: dict) -> str:
    if rng.random() < _NOISE["entities"]:
        for plain, entity in rng.sample(ENTITY_STYLES, 2):
            text = text.replace(plain, entity, 2)
    if rng.random() < _NOISE["tags"]:
        text = f"<p><b>{slots['brand']}</b><br>{text}</p>"
    if rng.random() < _NOISE["url"]:
        text += f" Visit http://www.{slots['brand'].split()[0].lower()}.com/products for more."
    if rng.random() < _NOISE["email"]:
        text += f" Questions? Email support@{slots['brand'].split()[0].lower()}.com"
    if cat == "books" and rng.random() < 0.4:
        text += rng.choice(BOILERPLATE)
    return text


def records(n: int, seed: int) -> Iterator[dict]:
    """Yield ``n`` realistic trn.json records, the same ones for the same seed."""
    rng = random.Random(seed)
    cats = list(CATEGORIES)
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
            cat = rng.choice(cats)
            v = CATEGORIES[cat]
            title, slots = _title(rng, cat, v)
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
                content = _add_noise(rng, _content(rng, cat, v, slots, target), cat, slots)
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

    with atomic_path(path) as tmp:
        if str(path).endswith(".gz"):
            from isal import igzip

            f = igzip.open(tmp, "wt", compresslevel=1, encoding="utf-8")
        else:
            f = open(tmp, "w", encoding="utf-8")
        with f:
            for rec in records(n, seed):
                f.write(json.dumps(rec, ensure_ascii=True) + "\n")
