import json
import random

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
    ex = template.example("Girls Ballet Tutu Neon Pink", DESC, p, random.Random(0))
    assert ex["prompt"][0] == {"role": "system", "content": p.system_prompt}
    assert ex["prompt"][1]["role"] == "user" and "Girls Ballet Tutu Neon Pink" in ex["prompt"][1]["content"]
    assert ex["completion"] == [{"role": "assistant", "content": DESC}]


def test_alpaca_example(p):
    ex = template.example("Tutu", DESC, p.model_copy(update={"format": "alpaca"}), random.Random(0))
    assert ex["prompt"].endswith("### Response:\n") and "Tutu" in ex["prompt"] and ex["completion"] == DESC


def test_questions_are_seeded_paraphrases(p):
    rows = [{"title": f"Item {i}", "content": DESC} for i in range(200)]
    a, b = template.build(rows, p), template.build(rows, p)
    assert a == b
    used = {ex["prompt"][1]["content"].replace(f"Item {i}", "{title}") for i, ex in enumerate(a)}
    assert used == set(p.questions)  # every phrasing appears, nothing else does
    assert template.build(rows, p.model_copy(update={"seed": 99})) != a


def test_only_answer_tokens_carry_labels(tiny_model, p):
    """Through TRL's own tokenisation and collator: labels are the description and end-of-turn only."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    examples = template.build([{"title": "Girls Ballet Tutu Neon Pink", "content": DESC}], p)
    trainer = SFTTrainer(model=tiny_model, processing_class=tokenizer, train_dataset=Dataset.from_list(examples),
                         args=SFTConfig(output_dir="/tmp/unused", use_cpu=True, report_to="none", max_length=128,
                                        completion_only_loss=True))
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labels = batch["labels"][0]
    answer = tokenizer.decode(labels[labels != -100])
    assert answer == DESC + "<|im_end|>\n"  # the description and the end of turn; the question is not trained on
    # …and render() agrees with TRL about where the answer starts.
    prompt_ids, completion_ids = template.render(examples[0], tokenizer)
    assert int((labels == -100).sum()) == len(prompt_ids)


def test_length_stats_count_truncation(tiny_model, p):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    examples = template.build([{"title": "T", "content": "word " * n} for n in (5, 50, 500)], p)
    stats = template.length_stats(examples, tokenizer, max_seq_len=100)
    assert stats["examples"] == 3 and stats["truncated"] == 1 and stats["tokens_max"] > 500


def test_stage_smoke(tmp_path, tiny_model, params_file):
    src = tmp_path / "sample"
    src.mkdir()
    for split in ("train", "validation", "test"):
        pq.write_table(pa.Table.from_pylist([{"uid": "1", "title": f"{split} tutu", "content": DESC}]),
                       src / f"{split}.parquet")
    stage.main(["--params", params_file(), "--src", str(src), "--model", tiny_model, "--out", str(tmp_path / "t"),
                "--metrics", str(tmp_path / "m.json")])
    line = json.loads((tmp_path / "t" / "train.jsonl").read_text())
    assert line["completion"][0]["content"] == DESC
    assert json.loads((tmp_path / "m.json").read_text())["validation"]["examples"] == 1
