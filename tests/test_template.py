import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prodqa import params, template
from stages import template as stage

DESC = "High quality 3 layer ballet tutu. 12 inches in length."


@pytest.fixture
def p(shipped):
    return params.parse("template", shipped["template"])


def test_chat_example_is_prompt_completion_messages(p):
    (ex,) = template.build([{"title": "Girls Ballet Tutu Neon Pink", "content": DESC}], p, train=False)
    assert ex["prompt"][0] == {"role": "system", "content": p.system_prompt}
    assert ex["prompt"][1]["role"] == "user" and "Girls Ballet Tutu Neon Pink" in ex["prompt"][1]["content"]
    assert ex["completion"] == [{"role": "assistant", "content": DESC}]


def test_an_empty_system_prompt_is_an_empty_system_turn_not_the_models_own(p, tiny_model):
    """template.system_prompt '': the chat keeps an empty system turn, so SmolLM2's template adds no system prompt
    of its own (9 tokens more than the default's, on every exposure)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    ids = template.encode(template.prompt("What is X?", p.model_copy(update={"system_prompt": ""})), tok)
    assert tok.decode(ids) == "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nWhat is X?<|im_end|>\n<|im_start|>assistant\n"


def test_alpaca_example(p):
    (ex,) = template.build([{"title": "Tutu", "content": DESC}], p.model_copy(update={"format": "alpaca"}), train=False)
    assert ex["prompt"].endswith("### Response:\n") and "Tutu" in ex["prompt"] and ex["completion"] == DESC
    assert template.question_text(ex["prompt"]) in template.phrasings("Tutu", p)


def test_plain_example_is_the_question_alone(p):
    plain = p.model_copy(update={"format": "plain"})
    (ex,) = template.build([{"title": "Tutu", "content": DESC}], plain, train=False)
    assert ex["prompt"] == template.phrasings("Tutu", p)[0] + "\n" and ex["completion"] == DESC  # no system prompt
    assert template.question_text(ex["prompt"]) == template.phrasings("Tutu", p)[0]
    grounded = template.prompt("What is it?", plain, {"title": "Tutu", "content": DESC})
    assert DESC in grounded and template.question_text(grounded).endswith("\n\nWhat is it?")


def test_each_trained_product_gets_distinct_phrasings_seeded_by_title(p):
    rows = [{"title": f"Item {i}", "content": DESC} for i in range(200)]
    a = template.build(rows, p, train=True)
    assert a == template.build(list(reversed(rows))[::-1], p, train=True)  # deterministic
    k = p.phrasings_per_product
    assert len(a) == (k + p.qa_per_product) * len(rows)  # the recitals, then the reading examples
    a = a[:k * len(rows)]
    first = [[template.question_text(ex["prompt"]) for ex in a[i * k:(i + 1) * k]] for i in range(len(rows))]
    assert all(len(set(qs)) == k for qs in first)  # k different phrasings per product
    used = {q.replace(f"Item {i}", "{title}") for i, qs in enumerate(first) for q in qs}
    assert used == set(p.questions)  # every phrasing appears, nothing else does
    # A product's phrasings depend on its title, not on its position or its neighbours.
    assert template.phrasings("Item 5", p) == template.phrasings("Item 5", p)
    assert [template.question_text(ex["prompt"]) for ex in template.build(rows[5:6], p, train=True)][:k] == first[5]
    assert template.build(rows, p.model_copy(update={"seed": 99}), train=True)[:k * len(rows)] != a
    assert len(template.build(rows, p, train=False)) == len(rows)


def test_phrasings_per_product_must_leave_one_held_out(shipped):
    n = len(shipped["template"]["questions"])
    with pytest.raises(params.ParamsError, match="phrasings_per_product"):
        params.parse("template", {**shipped["template"], "phrasings_per_product": n})


@pytest.mark.parametrize("layout", ["chat", "plain"])
def test_only_answer_tokens_carry_labels(tiny_model, p, layout):
    """Through TRL's own tokenisation and collator: labels are the description and end-of-turn only."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    p = p.model_copy(update={"format": layout})
    examples = template.build([{"title": "Girls Ballet Tutu Neon Pink", "content": DESC}], p, train=False)
    trainer = SFTTrainer(model=tiny_model, processing_class=tokenizer, train_dataset=Dataset.from_list(examples),
                         args=SFTConfig(output_dir="/tmp/unused", use_cpu=True, report_to="none", max_length=128,
                                        completion_only_loss=True))
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labels = batch["labels"][0]
    answer = tokenizer.decode(labels[labels != -100])
    # The description and the end of turn (plain: the end-of-text token); the question is not trained on.
    assert answer == DESC + ("<|im_end|>\n" if layout == "chat" else tokenizer.eos_token)
    # …and render() agrees with TRL about where the answer starts.
    prompt_ids, completion_ids = template.render(examples[0], tokenizer)
    assert int((labels == -100).sum()) == len(prompt_ids)


def test_length_stats_count_truncation(tiny_model, p):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    examples = template.build([{"title": "T", "content": "word " * n} for n in (5, 50, 500)], p, train=False)
    stats = template.length_stats(examples, tokenizer, max_seq_len=100)
    assert stats["examples"] == 3 and stats["truncated"] == 1 and stats["tokens_max"] > 500


def test_stage_smoke(tmp_path, tiny_model, params_file):
    src = tmp_path / "sample"
    src.mkdir()
    for split in ("train", "validation", "test"):
        pq.write_table(pa.Table.from_pylist([{"uid": "1", "title": f"{split} tutu", "content": DESC}]),
                       src / f"{split}.parquet")
    stage.main(["--params", params_file(), "--src", str(src), "--base", tiny_model, "--out", str(tmp_path / "t"),
                "--metrics", str(tmp_path / "m.json")])
    lines = [json.loads(x) for x in (tmp_path / "t" / "train.jsonl").read_text().splitlines()]
    tp = params.load(params.Template, params_file())
    assert len(lines) == tp.phrasings_per_product + tp.qa_per_product
    assert all(x["completion"][0]["content"] == DESC for x in lines[:tp.phrasings_per_product])
    assert json.loads((tmp_path / "m.json").read_text())["validation"]["examples"] == 1


def test_typed_share_types_some_training_titles_as_people_do_at_no_extra_examples(shipped):
    rows = [{"title": f"Wonderful Ballet Tutu Neon Pink Number {i}", "content": "A tutu."} for i in range(200)]
    plain = params.parse("template", shipped["template"])
    typed = plain.model_copy(update={"typed_share": 0.5})
    a, b = template.build(rows, plain, train=True), template.build(rows, typed, train=True)
    assert len(a) == len(b)  # same examples, same cost
    a, b = a[:plain.phrasings_per_product * len(rows)], b[:plain.phrasings_per_product * len(rows)]  # the recitals
    changed = [(x, y) for x, y in zip(a, b) if x != y]
    assert 0.4 < len(changed) / len(a) < 0.6  # about half of them
    asked = [template.question_text(y["prompt"]) for _, y in changed]
    assert any("wonderful ballet tutu" in q for q in asked)  # lower case
    assert any("Wonderful Ballet Tutu Neon" in q and "Number" not in q for q in asked)  # its first words
    assert all(x["completion"] == y["completion"] for x, y in changed)  # the answer is the description, unchanged
    assert template.build(rows, typed, train=False) == template.build(rows, plain, train=False)  # validation: exact


def test_reading_examples_answer_a_question_in_a_few_words_from_the_description(p):
    """Training teaches the model to read: a question about the description in the prompt, a short answer."""
    rows = [{"title": f"Item {i}", "content": DESC} for i in range(40)]
    reading = template.build(rows, p, train=True)[p.phrasings_per_product * len(rows):]
    assert len(reading) == p.qa_per_product * len(rows)
    for ex in reading:
        assert ex["prompt"][0]["content"].startswith(p.read_prompt) and "Description: " in ex["prompt"][0]["content"]
        assert len(ex["completion"][0]["content"].split()) <= 6
    answers = {ex["completion"][0]["content"] for ex in reading}
    assert "12 inches" in answers and "The description does not say." in answers  # facts, and what it does not say
    assert template.build(rows, p.model_copy(update={"qa_per_product": 0}), train=True) == \
        template.build(rows, p, train=True)[:p.phrasings_per_product * len(rows)]


def test_reading_products_are_read_never_recited(p):
    """Products of sample's reading split add reading examples only: no recital of their description."""
    rows = [{"title": f"Item {i}", "content": DESC} for i in range(10)]
    readers = [{"title": f"Other {i}", "content": DESC} for i in range(30)]
    alone, both = template.build(rows, p, train=True), template.build(rows, p, train=True, readers=readers)
    assert both[:len(alone) - p.qa_per_product * len(rows)] == alone[:len(alone) - p.qa_per_product * len(rows)]
    about = [ex for ex in both if "Other " in ex["prompt"][0]["content"]]
    assert len(about) == p.qa_per_product * len(readers) == len(both) - len(alone)
    assert all(ex["prompt"][0]["content"].startswith(p.read_prompt) for ex in about)
    assert template.build(rows, p, train=False, readers=readers) == template.build(rows, p, train=False)


def test_a_reading_examples_description_is_cut_around_its_answer(p):
    long = " ".join(f"Sentence {i} says little." for i in range(40)) + " It is 12 inches long. " + \
        " ".join(f"Then {i} more." for i in range(40))
    cut = template.window(long, "12 inches", 120)
    assert "12 inches" in cut and len(cut) <= 120 and cut in long
    assert template.window(long, "12 inches", 0) == long and template.window(DESC, "x", 120) == DESC
