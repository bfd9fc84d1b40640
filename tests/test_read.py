"""The reader (prodqa.read): the answer is the candidate the model likes best as its whole answer, among spans of
the description, yes/no and "does not say"; the transformers scorer gives what a full forward pass gives."""

import numpy as np
import pytest

from prodqa import read
from prodqa.qa import NOT_SAID

DESC = "A gripping novel by Ann Cleeves, set in Lerwick. This hardcover has 320 pages."


class WordScorer:
    """A model whose tokens are words and that likes one answer, ``liked`` (each word, then its end, at
    probability 0.9), and "does not say" less (0.5 a word); any other token is unlikely."""

    end = 0

    def __init__(self, liked: str):
        self.vocab = {"<end>": 0}
        self.answers = [(self.tokens(liked), np.log(0.9)), (self.tokens(NOT_SAID), np.log(0.5))]

    def tokens(self, text: str) -> list[int]:
        return [self.vocab.setdefault(w, len(self.vocab)) for w in text.split()]

    def _next(self, so_far: list[int]) -> np.ndarray:
        row = np.full(1000, -8.0)
        for answer, lp in self.answers:
            if so_far == answer[:len(so_far)]:
                nxt = answer[len(so_far)] if len(so_far) < len(answer) else self.end
                row[nxt] = max(row[nxt], lp)
        return row

    def prefix(self, prompt):
        self.prompt = prompt
        return self._next([])

    def rows(self, seqs):
        return [np.stack([self._next(s[:j + 1]) for j in range(len(s))]) for s in seqs]


def _read(question, liked, description=DESC):
    from prodqa import params
    from tests.conftest import ROOT

    tp = params.parse("template", params.read_yaml(ROOT / "params.yaml")["template"])
    return read.read(question, "Blue Lightning", description, WordScorer(liked), tp)


def test_the_answer_is_the_span_the_model_likes_whole_not_a_part_or_more():
    assert _read("Who wrote Blue Lightning?", "Ann Cleeves") == "Ann Cleeves"  # not "Ann", not "Ann Cleeves set"


def test_a_value_the_description_does_not_hold_is_never_answered():
    assert _read("Who wrote Blue Lightning?", "Agatha Christie") == NOT_SAID  # liked, but not in the description


def test_a_yes_no_question_gets_yes_or_no():
    assert _read("Is Blue Lightning set in Lerwick?", "Yes.") == "Yes."
    assert _read("Is Blue Lightning set in Lerwick?", "Lerwick") == NOT_SAID  # no span answers a yes/no question


def test_spans_open_at_the_best_liked_words_that_the_question_does_not_say():
    scorer = WordScorer("Lerwick")
    opening = scorer.prefix(None)
    spans = read.candidates("Where is the novel set?", DESC, opening, scorer)
    assert spans[0] == NOT_SAID and "Lerwick" in spans and "Ann Cleeves" in spans
    assert not any(s.split()[0] in {"novel", "set"} for s in spans[1:])  # the question's own words open none
    assert all(len(s.split()) <= read.SPAN_WORDS for s in spans)


@pytest.mark.slow
def test_the_hf_scorer_scores_as_a_full_forward_pass_does(tiny_model, shipped):
    """The prompt's cache, repeated over a batch of right-padded continuations, gives each continuation the
    log-probability a forward pass over prompt + continuation + end gives it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prodqa import params, template

    tp = params.parse("template", shipped["template"])
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    scorer = read.HFScorer(model, tok)
    p = template.prompt("Who wrote it?", tp, {"title": "Blue Lightning", "content": DESC})
    texts = ["Ann Cleeves", "Ann", "320 pages", NOT_SAID]
    got = read.score(scorer, scorer.prefix(p), texts)
    for text, s in zip(texts, got):
        ids = template.encode(p, tok)
        cont = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([ids + cont])).logits[0].float(), -1)
        want = sum(lp[len(ids) - 1 + j, t].item() for j, t in enumerate(cont))
        assert s == pytest.approx(want, abs=1e-3)


def test_a_question_wants_a_number_or_a_date_by_the_words_that_ask_it():
    assert read.wants("How many pages does Blue Lightning have?") == "number"
    assert read.wants("For what age range is it?") == "number"
    assert read.wants("In what year was Blue Lightning published?") == "date"
    assert read.wants("When did the author of How Many Miles to Babylon die?") == "date"  # the first asking words
    assert read.wants("Who wrote Blue Lightning?") is None
    assert read.wants("What is Blue Lightning about?") is None


def test_a_span_answers_a_typed_question_only_when_it_opens_and_holds_its_kind():
    assert read.of_kind(["about", "150", "recipes"], "number")
    assert read.of_kind(["Ages", "3-6"], "number")
    assert not read.of_kind(["Mexican", "recipes"], "number")
    assert not read.of_kind(["a", "farm"], "date")
    assert read.of_kind(["in", "November", "1998"], "date")
    assert read.of_kind(["a", "farm"], None)


def test_a_number_or_date_question_is_answered_by_a_span_of_its_kind_or_not_at_all():
    desc = DESC + " First published in 1998."
    assert _read("How many pages does Blue Lightning have?", "320") == "320"
    assert _read("How many pages does Blue Lightning have?", "Lerwick") == NOT_SAID  # liked, but no number
    assert _read("When was Blue Lightning first published?", "1998", desc) == "1998"
    assert _read("When was Blue Lightning first published?", "Ann Cleeves", desc) == NOT_SAID  # no date
