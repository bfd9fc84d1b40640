"""Product lookup in the cleaned catalog: which product a question is about, and title suggestions.

Used by ``ask --grounded`` and ``serve``. A question names a product loosely ("what's Girls Ballet Tutu
Neon Pink like?"), so lookup is by words, not by exact string: the index is built once, in a few seconds
for ~1.2M titles, as an inverted index (word -> the titles holding it) in numpy arrays, and each lookup
only scores the titles that share the question's rarer words (rapidfuzz), never the whole catalog.

A title contained in the question wins outright (the longest one); otherwise the best token-set match,
if it scores at least ``MIN_SCORE``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import DataError

MIN_SCORE = 70  # token-set similarity of title and question; unrelated titles score ~35-45
WORDS = r"[^\pL\pN]+"  # RE2: a word is a run of letters and digits, in any script
COMMON = 0.05  # words in more than this share of titles (what, is, the, for) select only when nothing else does
CANDIDATES = 400  # titles scored per lookup


@dataclass(frozen=True)
class Match:
    title: str
    content: str
    score: float  # 100 when the title is in the question

    def context(self) -> dict:
        """The product as ``template.prompt`` takes it for a grounded answer."""
        return {"title": self.title, "content": self.content}


def _words(texts):
    """Lower-cased words of each text, as a pyarrow list array (one tokenizer for titles and questions)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.string())
    return pc.split_pattern_regex(pc.utf8_lower(texts), WORDS)


class TitleIndex:
    """An inverted index over catalog titles (see the module doc)."""

    def __init__(self, titles, contents):
        import pyarrow as pa
        import pyarrow.compute as pc

        self.titles, self.contents = titles, contents  # pyarrow arrays, read lazily per hit
        lists = _words(titles)
        words = pc.list_flatten(lists)
        owner = pc.list_parent_indices(lists).to_numpy()
        keep = pc.not_equal(words, "").to_numpy(zero_copy_only=False)
        encoded = pc.dictionary_encode(pc.filter(words, pa.array(keep)))
        word_ids = encoded.indices.to_numpy()
        vocab = encoded.dictionary.to_pylist()
        order = np.argsort(word_ids, kind="stable")
        self.postings = owner[keep][order].astype(np.int32)  # title numbers, grouped by word
        self.offsets = np.searchsorted(word_ids[order], np.arange(len(vocab) + 1))
        self.word_id = {w: i for i, w in enumerate(vocab)}
        self.sorted_vocab = sorted(vocab)  # for the last, half-typed word of a suggestion
        self.common = max(1000, int(COMMON * len(titles)))  # a small catalog: every word selects

    @classmethod
    def load(cls, path: str | Path) -> "TitleIndex":
        import pyarrow.parquet as pq

        if not Path(path).exists():
            raise DataError(f"{path}: no cleaned catalog; run `make repro` (or `dvc repro clean`) first")
        table = pq.read_table(path, columns=["title", "content"])
        return cls(table["title"].combine_chunks(), table["content"].combine_chunks())

    def _postings(self, word_id: int) -> np.ndarray:
        return self.postings[self.offsets[word_id]:self.offsets[word_id + 1]]

    def candidates(self, text: str, prefix: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Title numbers sharing the most of ``text``'s selective words, best first (at most CANDIDATES),
        and how many of those words each holds.

        ``prefix``: the last word may be half-typed, so it stands for every word it begins.
        """
        words = [w for w in _words([text])[0].as_py() if w]
        ids = {self.word_id[w] for w in words if w in self.word_id}
        if prefix and words:
            start = bisect.bisect_left(self.sorted_vocab, words[-1])
            for w in self.sorted_vocab[start:start + 20]:
                if not w.startswith(words[-1]):
                    break
                ids.add(self.word_id[w])
        lists = [self._postings(i) for i in ids]
        selective = [p for p in lists if len(p) <= self.common] or sorted(lists, key=len)[:1]
        if not selective:
            return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int64)
        hits, counts = np.unique(np.concatenate(selective), return_counts=True)
        top = np.argsort(-counts, kind="stable")[:CANDIDATES]
        return hits[top], counts[top]

    def find(self, question: str) -> tuple[Match | None, float]:
        """The product the question is about and its score, or (None, best score) below MIN_SCORE."""
        from rapidfuzz import fuzz, utils

        q = question.lower()
        best, best_key = None, (-1.0, 0)
        for i in self.candidates(question)[0]:
            title = self.titles[int(i)].as_py()
            score = 100.0 if title.lower() in q else fuzz.token_set_ratio(question, title, processor=utils.default_process)
            key = (score, len(title))  # the longest title wins a tie (a contained title beats its prefix)
            if key > best_key:
                best, best_key = int(i), key
        if best is None or best_key[0] < MIN_SCORE:
            return None, max(best_key[0], 0.0)
        return Match(self.titles[best].as_py(), self.contents[best].as_py(), best_key[0]), best_key[0]

    def suggest(self, text: str, k: int = 8) -> list[str]:
        """Up to ``k`` catalog titles for what has been typed so far (the last word may be unfinished)."""
        from rapidfuzz import fuzz, utils

        hits, counts = self.candidates(text, prefix=True)
        titles = [(self.titles[int(i)].as_py(), int(c)) for i, c in zip(hits, counts)]
        ranked = sorted(titles, key=lambda tc: (-tc[1], -fuzz.token_set_ratio(text, tc[0], processor=utils.default_process)))
        return [t for t, _ in ranked[:k]]
