import pytest

from prodqa import params
from prodqa.params import ParamsError


def test_shipped_params_are_valid(shipped):
    for section in params.SECTIONS:
        params.parse(section, shipped[section])


@pytest.mark.parametrize("section, change, message", [
    ("clean", {"min_chars": -1}, "clean.min_chars: Input should be greater than or equal to 0"),
    ("clean", {"min_chars": 900, "max_chars": 10}, "min_chars (900) > max_chars (10)"),
    ("clean", {"colour": 1}, "clean.colour: unknown key"),
    ("clean", {"min_chars": "100"}, "clean.min_chars: Input should be a valid integer"),
    ("clean", {"html_unescape": "yes"}, "clean.html_unescape: Input should be a valid boolean"),
    ("sample", {"val_frac": 1.5}, "sample.val_frac: Input should be less than 1"),
    ("sample", {"val_frac": 0.6, "test_frac": 0.5}, "val_frac + test_frac must be < 1"),
    ("sample", {"n_products": 0}, "sample.n_products: Input should be greater than 0"),
    ("sample", {"length_buckets": [300, 100]}, "strictly increasing"),
    ("unpack", {"block_bytes": 10}, "unpack.block_bytes"),
    ("clean", {"boilerplate_patterns": ["(unclosed"]}, "'(unclosed' is not a valid RE2 regex"),
    ("train", {"backend": "tpu"}, "train.backend: Input should be 'auto', 'peft' or 'unsloth'"),
    ("template", {"questions": ["What is it?"]}, "has no {title} placeholder"),
])
def test_bad_values_name_the_key(shipped, section, change, message):
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        params.parse(section, {**shipped[section], **change})


def test_missing_key_is_named(shipped):
    raw = dict(shipped["sample"])
    del raw["seed"]
    with pytest.raises(ParamsError, match="sample.seed: missing key"):
        params.parse("sample", raw)


def test_missing_section(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  raw: x\n")
    with pytest.raises(ParamsError, match="section 'clean' is missing"):
        params.load(params.Clean, path)


@pytest.mark.parametrize("duplicate", ["What is {title}?", "what is  {title}?", "WHAT IS {title}?"])
def test_a_phrasing_listed_twice_is_refused(shipped, duplicate):
    """The held-out phrasing of a product must differ from the ones it was trained on: a list holding the
    same phrasing twice (up to case and spacing) could hold it out and train on it at once."""
    questions = [*shipped["template"]["questions"], duplicate]
    with pytest.raises(params.ParamsError, match=r"template: .*questions 'What is \{title\}\?' and .* are the same phrasing"):
        params.parse("template", {**shipped["template"], "questions": questions})
