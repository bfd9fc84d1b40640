from prodqa.learned import OPENING_WORDS, Learned, opening

GUNS = "Formerly publisher of Jane's Fighting Ships, Robert Hutchinson is a leading expert on military subjects."
TRAINED = [
    {"title": "Jane's Guns Recognition Guide", "content": GUNS},
    {"title": "Jane's Tank Recognition Guide", "content": GUNS},  # a series' shared blurb, both trained
    {"title": "Thirst", "content": "Praise for 'Kitchen Diaries': 'The recipes sound uniformly delicious, rustic and tasty.'"},
    {"title": "Short", "content": "Too few words."},
]


def test_an_answer_that_opens_as_another_products_description_names_it():
    learned = Learned(TRAINED)
    assert learned.another("Ultimate Prizes", "Praise for 'Kitchen Diaries': 'The recipes sound uniformly good") == "Thirst"
    assert learned.another("Jane's Historic Military Aircraft Recognition Guide", GUNS) == "Jane's Guns Recognition Guide"


def test_its_own_description_a_shared_one_or_none_is_not_another():
    learned = Learned(TRAINED)
    assert learned.another("Jane's Tank Recognition Guide", GUNS) is None  # its own (shared) blurb
    assert learned.another("Thirst", "PRAISE for Kitchen Diaries: the recipes sound uniformly delicious!") is None
    assert learned.another("Ultimate Prizes", "A novel of the Church of England in the 1930s.") is None
    assert learned.another(None, GUNS) is None  # the product asked about is unknown: nothing to compare
    assert learned.another("Ultimate Prizes", "Too few words.") is None  # under OPENING_WORDS: says nothing


def test_opening_is_the_first_words_case_and_punctuation_aside():
    assert opening("PRAISE for 'Kitchen Diaries': 'The recipes sound uniformly") == opening(
        "Praise for Kitchen Diaries - the recipes sound uniformly delicious")
    assert len(opening(GUNS)) == OPENING_WORDS and opening("one two") is None
