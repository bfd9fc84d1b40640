import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prodqa import evaluate, params, report
from stages import evaluate as stage


@pytest.fixture
def p(shipped):
    return params.parse("evaluate", {**shipped["evaluate"], "max_new_tokens": 8, "batch_size": 3})


@pytest.fixture
def tp(shipped):
    return params.parse("template", {**shipped["template"], "max_seq_len": 64})


def test_metrics_on_known_strings():
    ref = "the cat sat on the mat"
    metrics, per = evaluate.score(["the cat sat on the mat", "a dog ran", ""], [ref, ref, ref])
    assert per[0] == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert per[1]["rouge1"] == 0.0 and per[2]["rougeL"] == 0.0
    assert metrics["rouge1"] == pytest.approx(1 / 3, abs=1e-4)
    assert metrics["empty_answers"] == 1


def test_rouge_uses_stemming():
    _, per = evaluate.score(["running dogs"], ["run dog"])
    assert per[0]["rouge1"] == 1.0


def test_bleu_matches_sacrebleu_on_a_known_pair():
    metrics, _ = evaluate.score(["the cat sat on the mat today"], ["the cat sat on the mat today"])
    assert metrics["bleu"] == 100.0


@pytest.mark.parametrize("text, degenerate", [
    ("", True),
    ("great tutu great tutu great tutu great tutu great tutu", True),
    ("A soft pink tutu with three layers of tulle.", False),
])
def test_degenerate_answers(text, degenerate):
    assert evaluate.is_degenerate(text) is degenerate


def test_batched_generation_matches_one_at_a_time(tiny_model, p, tp):
    """Left padding must not change a greedy answer: batch of 3 == three batches of 1."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    ids = [evaluate.encode_prompt(x, tokenizer) for x in evaluate.prompts(["Tutu", "A much longer title of a toy", "Mug"], tp)]
    assert len({len(i) for i in ids}) > 1  # different lengths, so padding happens
    batched = evaluate.generate(model, tokenizer, ids, p, batch_size=3)
    single = [evaluate.generate(model, tokenizer, [i], p, batch_size=1)[0] for i in ids]
    assert batched == single


def test_reference_loss_is_the_answer_tokens_nll(tiny_model, tp):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prodqa.template import render

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    ex = {"prompt": [{"role": "user", "content": "What is a tutu?"}],
          "completion": [{"role": "assistant", "content": "A skirt."}]}
    (loss,) = evaluate.reference_loss(model, tokenizer, [ex], 64, 1)
    prompt, completion = render(ex, tokenizer)
    ids = torch.tensor([prompt + completion])
    labels = torch.tensor([[-100] * len(prompt) + completion])
    with torch.no_grad():
        expected = model(input_ids=ids, labels=labels).loss.item()
    assert loss == pytest.approx(expected, rel=1e-4)
    # Padding a second, longer example into the same batch leaves the first one's loss unchanged.
    long = {**ex, "completion": [{"role": "assistant", "content": "A skirt. " * 5}]}
    assert evaluate.reference_loss(model, tokenizer, [ex, long], 64, 2)[0] == pytest.approx(loss, rel=1e-4)


def test_report_markdown_has_both_answers_and_scores():
    m = {"rouge1": 0.1, "rouge2": 0.0, "rougeL": 0.1, "bleu": 1.0, "loss": 3.0, "perplexity": 20.1,
         "empty_answers": 0, "degenerate_answers": 1, "examples": 1}
    row = {"title": "Tutu | pink", "question": "What is Tutu?", "reference": "A skirt.", "answer": "", "rougeL": 0.0}
    md = report.markdown(m, {**m, "rougeL": 0.5}, [row], [{**row, "answer": "A pink skirt.", "rougeL": 0.5}], 1)
    assert "| rougeL | 0.1 | 0.5 |" in md
    assert "| base | *(empty)* | 0.000 |" in md and "| fine-tuned | A pink skirt. | 0.500 |" in md
    assert "Tutu \\| pink" in md  # table cells are escaped


@pytest.mark.slow
def test_tiny_end_to_end_evaluate_with_report(tmp_path, tiny_model, params_file):
    test = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pylist([{"uid": str(i), "title": f"Tutu {i}", "content": "A pink tutu."}
                                         for i in range(4)]), test)
    prm = params_file({"evaluate.max_new_tokens": 6, "evaluate.max_examples": 3, "template.max_seq_len": 64})
    common = ["--params", prm, "--model", tiny_model, "--test", str(test)]
    stage.main([*common, "--answers", str(tmp_path / "base" / "answers.jsonl"), "--metrics", str(tmp_path / "mb")])
    stage.main([*common, "--answers", str(tmp_path / "tuned" / "answers.jsonl"), "--metrics", str(tmp_path / "mt"),
                "--baseline", str(tmp_path / "base" / "answers.jsonl"), "--report", str(tmp_path / "report")])
    metrics = json.loads((tmp_path / "mt" / "metrics.json").read_text())
    assert metrics["examples"] == 3 and math.isclose(metrics["perplexity"], math.exp(metrics["loss"]), rel_tol=1e-3)
    assert {"rouge1", "rouge2", "rougeL", "bleu", "empty_answers", "degenerate_answers"} <= set(metrics)
    answers = [json.loads(line) for line in (tmp_path / "tuned" / "answers.jsonl").read_text().splitlines()]
    assert [a["title"] for a in answers] == ["Tutu 0", "Tutu 1", "Tutu 2"]
    assert (tmp_path / "report" / "report.md").read_text().startswith("# Base vs fine-tuned")
    assert (tmp_path / "report" / "metrics_bars.png").stat().st_size > 1000
