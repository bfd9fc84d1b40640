"""Stage ``catalog`` and product lookup: which catalog product a question is about, on SQLite FTS5.

The stage writes the cleaned catalog once as one SQLite file (a DVC output): the products, an FTS5 index of
their titles (``unicode61``, diacritics removed) and each title word's document frequency. ``ask`` and
``serve`` open it read-only in milliseconds. SQLite FTS5 ships with Python, keeps the index in one
file that DVC versions, and ranks by BM25; bm25s or tantivy would add a dependency for the same job.

A question names a product loosely ("tell me about the girls ballet tutu pink", "lodge skilet"), so lookup
(:meth:`Catalog.find`) works on words:

1. the question's words, minus the scaffolding of question phrasings ("what", "tell", "about") and English
   function words, retrieve candidates by BM25: titles holding all of its rarest words, then titles holding
   two of its words side by side as it does ("paris on the": a name typed in part), then any of them. A word
   the catalog lacks (a typo) stands for its commonest words one edit away, and each title is read with the
   one it holds ("celan": "clan" or "clean");
2. each candidate is scored (:meth:`Catalog.score`, 0–100) by how much of the title the question covers and
   how much of the question the title covers, words weighed by rarity (IDF): an F0.5, so the title's
   coverage counts double. The product meant wins over a short title that happens to be inside the question
   ("Pink" against "Girls Ballet Tutu Neon Pink" asked without "Neon"), and a name typed in part still finds
   the title it begins.

3. below ``MIN_SCORE``, a title the question names inside it as a phrase ("What is the profession of the author
   of Blowback?"), whole or before its subtitle, and rare enough to be a name (:meth:`Catalog.named_inside`): people
   name a product inside a longer question, whose other words no title explains.

Else, when the best title still scores ``ASK_BACK_SCORE`` or more, it comes back ``unsure``: the question is asked
back ("Do you mean …?"), neither answered about a product it may not mean nor told "not in the catalog" (people's
questions hold more words than a title: "dorothy row guide to life - what year was she born", 68). Below that there
is no match: the product is not in the catalog. When the question names only the
first words of the title found, other titles that begin with the same words (and hold every question word
it does) come with the match as ``others`` ("Harry Potter and the" begins seven): the question does not say
which product it means.
"""

from __future__ import annotations

import math
import re
import sqlite3
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .files import DataError, atomic_path

BETA = 0.5  # < 1: the title's coverage weighs more than the question's (people add words around a name)
MIN_SCORE = 88  # below: not a sure match (chosen with benchmarks/lookup.py on real titles: docs/confidence.md)
ASK_BACK_SCORE = 65  # from here to MIN_SCORE the best title is asked back, "Do you mean …?" (docs/qa.md); below: none
# A title named inside a longer question (Catalog.named_inside) weighs at least one word this rare.
NAMED_DF, NAMED_SHARE = 3, 1000  # "rare": in at most 3 titles, or one title in 1,000 of a large catalog
MAX_OTHERS = 4  # other titles the question begins as well, named besides the best
CANDIDATES = 200  # titles scored per lookup
TYPO_FIXES = 3  # catalog words one edit away from a word it lacks, tried in its place (most common first)
RETRIEVE_WORDS = 4  # rarest question words that retrieve candidates
LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"  # what a typo may put in a word
# Words a question wraps a name in: the project's question phrasings, and English function words ("could",
# "any", "at"), which a title holds by chance (they count where both hold them; see Catalog.score).
SCAFFOLDING = {"a", "an", "the", "of", "me", "about", "please", "product", "tell", "what", "whats", "s", "is", "do",
               "you", "know", "describe", "can", "give", "description", "info", "on", "details", "like", "it",
               "i", "m", "im", "my", "we", "your", "its", "this", "that", "these", "those", "there", "here", "any",
               "some", "at", "in", "to", "for", "from", "with", "by", "as", "and", "or", "if", "be", "are", "was",
               "were", "am", "been", "does", "did", "could", "would", "should", "will", "may", "might", "must",
               "which", "who", "how", "why", "when", "where", "more", "much", "just", "so", "than", "then"}


def words(text: str) -> list[str]:
    """Lower-cased words without diacritics, split as FTS5's unicode61 tokenizer splits them."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return re.findall(r"[^\W_]+", text.casefold())


def main_titles(title: str) -> list[str]:
    """A title without its subtitles, series or format, shortest first: what comes before each ": ", " (", " [" or
    " - " ("Provence", "Provence: The Beautiful Cookbook" of "Provence: The Beautiful Cookbook: Authentic …")."""
    return [title[:m.start()] for m in re.finditer(r": | \(| \[| - ", title) if m.start()]


def _quote(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


@dataclass(frozen=True)
class Match:
    title: str
    content: str
    score: float  # 0-100: how well title and question cover each other
    others: tuple[str, ...] = ()  # other titles that begin with the words the question names: it does not say which
    unsure: bool = False  # scored ASK_BACK_SCORE to MIN_SCORE: the question may mean it, and is asked

    @property
    def asks_back(self) -> bool:
        """Whether the question is asked back (which one? / do you mean it?) rather than answered."""
        return bool(self.others) or self.unsure

    def context(self) -> dict:
        """The product as ``template.prompt`` takes it for a grounded answer."""
        return {"title": self.title, "content": self.content}


def build(src: str | Path, out: str | Path, batch_rows: int = 100_000) -> dict:
    """Write the lookup file of the cleaned catalog ``src`` (parquet with title, content) to ``out``, atomically."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(src)
    with atomic_path(out) as tmp:
        tmp.unlink()
        db = sqlite3.connect(tmp)
        db.executescript("""
            PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
            CREATE TABLE products (id INTEGER PRIMARY KEY, title TEXT NOT NULL, content TEXT NOT NULL);
            CREATE VIRTUAL TABLE titles USING fts5 (title, content = 'products', content_rowid = 'id',
                                                    tokenize = 'unicode61 remove_diacritics 2');
        """)
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=["title", "content"]):
            db.executemany("INSERT INTO products (title, content) VALUES (?, ?)",
                           zip(batch.column("title").to_pylist(), batch.column("content").to_pylist()))
        db.executescript("""
            INSERT INTO titles (titles) VALUES ('rebuild');
            CREATE VIRTUAL TABLE temp.terms USING fts5vocab (main, titles, 'row');
            CREATE TABLE vocab (term TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID;
            INSERT INTO vocab SELECT term, doc FROM temp.terms;
            INSERT INTO titles (titles) VALUES ('optimize');
        """)
        db.commit()
        n = db.execute("SELECT count(*) FROM products").fetchone()[0]
        terms = db.execute("SELECT count(*) FROM vocab").fetchone()[0]
        db.close()
    return {"products": n, "title_words": terms, "bytes": Path(out).stat().st_size}


class Catalog:
    """The lookup file of :func:`build`, opened read-only."""

    def __init__(self, path: str | Path):
        if not Path(path).exists():
            raise DataError(f"{path}: no catalog index; run `make repro` (or `dvc repro catalog`) first")
        self.db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, check_same_thread=False)
        try:
            self.n = self.db.execute("SELECT count(*) FROM products").fetchone()[0]
        except sqlite3.DatabaseError as err:
            raise DataError(f"{path}: not a catalog index ({err}); re-run `dvc repro catalog`") from None

    def _df(self, terms: set[str]) -> dict[str, int]:
        if not terms:
            return {}
        marks = ",".join("?" * len(terms))
        return dict(self.db.execute(f"SELECT term, df FROM vocab WHERE term IN ({marks})", sorted(terms)))

    def _idf(self, df: dict[str, int], word: str) -> float:
        return math.log((self.n + 1) / (df.get(word, 0) + 0.5))  # an unknown word (a typo) counts as rare

    def _candidates(self, query: list[str], df: dict[str, int], prefix: str | None = None, k: int = CANDIDATES,
                    fixes: dict[str, list[str]] | None = None, pairs: list[tuple[str, str]] = ()) -> list[int]:
        """Rowids of up to ``k`` titles to score, the likeliest first: titles holding the question's rarest words
        (a typo: any of its ``fixes``), then those holding two of its words side by side as it does (``pairs``: a
        name typed in part, "paris on the", whose one rare word is in thousands of titles), then any of them."""
        fixes = fixes or {}
        weight = {w: sum(df.get(f, 0) for f in fixes.get(w, [w])) for w in set(query)}
        known = sorted((w for w in weight if weight[w]), key=lambda w: (weight[w], w))[:RETRIEVE_WORDS]  # ties: by word
        terms = [" OR ".join(_quote(f) for f in fixes.get(w, [w])) for w in known]
        terms = [f"({t})" if " OR " in t else t for t in terms]
        terms += [_quote(prefix) + "*"] if prefix else []
        if not terms:
            return []
        queries = [" AND ".join(terms)] if len(terms) > 1 else []  # all of them (every word right), then phrases, then any
        queries += [" OR ".join(_quote(f"{a} {b}") for a, b in pairs)] if pairs else []
        queries += [" OR ".join(terms)]
        rows: dict[int, None] = {}
        for query in queries:
            if len(rows) >= k:
                break
            found = self.db.execute("SELECT rowid FROM titles WHERE titles MATCH ? ORDER BY rank LIMIT ?", (query, k))
            rows.update(dict.fromkeys(r[0] for r in found))
        return list(rows)[:k]

    def _corrected(self, query: list[str], df: dict[str, int]) -> tuple[dict[str, list[str]], dict[str, int]]:
        """For each question word the catalog does not have, its most common words one edit away (a typo): up
        to ``TYPO_FIXES``, each tried in its place ("celan": "clan" and "clean"; the title decides)."""
        unknown = [w for w in set(query) if not df.get(w) and len(w) >= 4 and w.isalpha()]
        fixes = {}
        for word in unknown:
            splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
            edits = {a + b[1:] for a, b in splits if b} | {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
            edits |= {a + c + b[1:] for a, b in splits if b for c in LETTERS} | {a + c + b for a, b in splits for c in LETTERS}
            found = self._df(edits)
            if found:
                fixes[word] = sorted(found, key=lambda w: (-found[w], w))[:TYPO_FIXES]
                df = {**df, **{f: found[f] for f in fixes[word]}}
        return fixes, df

    def hits(self, question: list[str], title: str) -> tuple[list[str], set[str], set[str]]:
        """The title's words, and which title and question words match each other (equal, or one edit apart
        in words of 5+ letters: a typo)."""
        from rapidfuzz.distance import OSA

        t_list, q_set = words(title), set(question)

        def near(a: str, b: str) -> bool:
            return a == b or (len(a) >= 5 and len(b) >= 5 and OSA.distance(a, b) <= 1)

        hit_t = {t for t in t_list if t in q_set or any(near(q, t) for q in q_set)}
        hit_q = {q for q in q_set if any(near(q, t) for t in hit_t)}
        return t_list, hit_t, hit_q

    def score(self, question: list[str], title: str, df: dict[str, int], explained: set[str] | None = None) -> float:
        """How well question and title name each other (0-100), see the module doc.

        An F-score (``BETA``) of two IDF-weighted coverages: of the title by the question (precision) and of the
        question by the title (recall), where only question words that some candidate title holds count
        (``explained``): "thinking of buying" around a name is no title's and costs nothing, while "Girls
        Ballet Tutu" around "Pink" is another title's and does. (Counting only a rival that names all of this
        title's words too found more products, but matched 28% of absent ones to another: docs/confidence.md.)
        Scaffolding words ("the", "what") count where both hold them and are ignored where one does. A title whose first two or more words the question
        names in order is also scored on those words alone (a name typed in part), at 0.9, so the whole title
        still wins when it is asked whole.
        """
        t_list, hit_t, hit_q = self.hits(question, title)
        q_set = set(question) & explained if explained is not None else set(question)
        if not t_list or not q_set:
            return 0.0
        idf = {w: self._idf(df, w) for w in set(t_list) | q_set}
        t_weight = {t: idf[t] for t in set(t_list) if t not in SCAFFOLDING or t in hit_t}
        counted = hit_q | self.diverging(question, t_list, hit_q)  # scaffolding that counts
        q_weight = {q: idf[q] for q in q_set if q not in SCAFFOLDING or q in counted}
        recall = sum(w for q, w in q_weight.items() if q in hit_q) / (sum(q_weight.values()) or 1)

        def f(precision: float) -> float:
            b2 = BETA * BETA
            return 0.0 if not precision or not recall else (1 + b2) * precision * recall / (b2 * precision + recall)

        whole = f(sum(w for t, w in t_weight.items() if t in hit_t) / (sum(t_weight.values()) or 1))
        prefix = self.begun(question, t_list, hit_t)
        named = t_list[:prefix]
        part = 0.9 * f(1.0) if len([t for t in named if t in t_weight]) >= 2 and prefix < len(t_list) else 0.0
        return round(100 * max(whole, part), 1)

    @staticmethod
    def diverging(question: list[str], t_list: list[str], hit_q: set[str]) -> set[str]:
        """Scaffolding words the question puts right after a word of the title where the title goes on with another
        word: they count against the title ("nice for" is not "Nice Lovely Just So"), though such a word alone
        says nothing ("Is The Black Moon any good?" names "The Black Moon" whole)."""
        out = set()
        for prev, word in zip(question, question[1:]):
            if word in SCAFFOLDING and word not in hit_q and prev in hit_q and prev in t_list:
                nxt = t_list.index(prev) + 1
                if nxt < len(t_list) and t_list[nxt] != word:
                    out.add(word)
        return out

    @staticmethod
    def begun(question: list[str], t_list: list[str], hit_t: set[str]) -> int:
        """How many of the title's first words (``t_list``, matched ``hit_t``) the question names, in their order."""
        prefix = next((i for i, t in enumerate(t_list) if t not in hit_t), len(t_list))
        return prefix if any(question[i:i + prefix] == t_list[:prefix] for i in range(len(question))) else 0

    def find(self, question: str) -> tuple[Match | None, float]:
        """The product the question is about and its score (``unsure`` from ASK_BACK_SCORE to MIN_SCORE), or
        (None, best score) below ASK_BACK_SCORE."""
        asked = words(question)
        query = [w for w in asked if w not in SCAFFOLDING] or asked
        fixes, df = self._corrected(query, self._df(set(query)))
        pairs = [(a, b) for a, b in zip(asked, asked[1:])
                 if not {a, b} <= SCAFFOLDING and df.get(a, a in SCAFFOLDING) and df.get(b, b in SCAFFOLDING)]
        titles = {rowid: self.db.execute("SELECT title FROM products WHERE id = ?", (rowid,)).fetchone()[0]
                  for rowid in self._candidates(query, df, fixes=fixes, pairs=pairs)}
        df = {**df, **self._df({w for t in titles.values() for w in words(t)} - df.keys())}

        def ordered(title: str) -> list[str]:
            """The question in its order, each typo replaced by the fix this title holds (else the commonest)."""
            held = set(words(title))
            return [next((f for f in fixes[w] if f in held), fixes[w][0]) if w in fixes else w for w in asked]

        read = {rowid: ordered(t) for rowid, t in titles.items()}  # the question as each title reads it
        explained = set().union(*(self.hits(read[rowid], t)[2] for rowid, t in titles.items()))
        ranked = sorted(((self.score(read[rowid], t, df, explained), rowid, t) for rowid, t in titles.items()),
                        key=lambda x: -x[0])  # stable: of equal scores, the first retrieved comes first
        if not ranked:
            return None, 0.0
        if ranked[0][0] < MIN_SCORE:  # no title and question name each other: is a title named inside the question?
            inside = self.named_inside(asked, titles, df)
            if inside is None:
                best_score, best, _ = ranked[0]
                if best_score < ASK_BACK_SCORE:
                    return None, best_score
                title, content = self.db.execute("SELECT title, content FROM products WHERE id = ?", (best,)).fetchone()
                return Match(title, content, best_score, unsure=True), best_score
            ranked = [next(r for r in ranked if r[1] == inside)]
        best_score, best, best_title = ranked[0]
        t_list, hit_t, hit_q = self.hits(read[best], best_title)
        named = t_list[:self.begun(read[best], t_list, hit_t)]
        others = ()
        if 0 < len(named) < len(t_list) and set(named) - SCAFFOLDING:  # the title named in part: which one?
            begin = self.db.execute("SELECT rowid, title FROM titles WHERE titles MATCH ? ORDER BY rank LIMIT ?",
                                    ("^" + _quote(" ".join(named)), 50))  # titles that begin with those words
            others = tuple(t for rowid, t in begin if rowid != best and self.hits(ordered(t), t)[2] >= hit_q)[:MAX_OTHERS]
        title, content = self.db.execute("SELECT title, content FROM products WHERE id = ?", (best,)).fetchone()
        return Match(title, content, best_score, others), best_score

    def named_inside(self, asked: list[str], titles: dict[int, str], df: dict[str, int]) -> int | None:
        """The candidate whose title a longer question names inside it ("What is the profession of the author of
        Blowback?"), or None: of the titles (or titles before their subtitle: people name a book so) whose every
        word but scaffolding the question holds, in the title's order, the one whose words weigh most, if they
        weigh a rare word's worth (a common word such as "Pink" alone is no product's name). A title named in
        part is not enough: "A Day in the Life of China" is not "A Day in the Life of Italy". ``asked``: the question's
        words as typed (no typo fixes: "looking" is not "cooking")."""
        rare = math.log((self.n + 1) / (max(NAMED_DF, self.n / NAMED_SHARE) + 0.5))  # a title word as rare as this
        best, best_weight = None, 0.0
        for rowid, title in titles.items():
            for name in {title, *main_titles(title)}:
                named = [t for t in words(name) if t not in SCAFFOLDING]
                if all(t.isdigit() for t in named):
                    continue  # "1849-50 (…)": a number is no name
                if not self.in_order(asked, named):
                    continue
                weight = sum(self._idf(df, t) for t in set(named))
                if weight >= rare and weight > best_weight:
                    best, best_weight = rowid, weight
        return best

    @staticmethod
    def in_order(question: list[str], named: list[str]) -> bool:
        """Whether the question names the title's words as one phrase, in the title's order, with nothing but
        scaffolding between them ("Southwest: The Beautiful Cookbook" is not "Southwest Cookbook"), spelt as the
        title spells them (a typo is the F-score's to read)."""
        for start, word in enumerate(question):
            if word != named[0]:
                continue
            k, i = 1, start + 1
            while k < len(named) and i < len(question) and (question[i] == named[k] or question[i] in SCAFFOLDING):
                k, i = k + (question[i] == named[k]), i + 1
            if k == len(named):
                return True
        return False

    def suggest(self, text: str, k: int = 8) -> list[str]:
        """Up to ``k`` catalog titles for what has been typed so far (the last word may be unfinished)."""
        typed = words(text)
        if not typed:
            return []
        done, last = [w for w in typed[:-1] if w not in SCAFFOLDING], typed[-1]
        df = self._df(set(done))
        ids = self._candidates(done, df, prefix=last, k=k)
        return [self.db.execute("SELECT title FROM products WHERE id = ?", (i,)).fetchone()[0] for i in ids[:k]]
