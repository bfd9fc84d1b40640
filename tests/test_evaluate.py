import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prodqa import evaluate, params, template
from prodqa import report as report_module
from stages import evaluate as stage


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
    """Answer and reference in the right order: swapped, sacrebleu gives 25.85 (brevity penalty differs)."""
    metrics, _ = evaluate.score(["the cat sat on the mat"], ["the cat is sitting on the mat today"])
    assert metrics["bleu"] == 27.22


@pytest.mark.parametrize("text, degenerate", [
    ("", True),
    ("great tutu great tutu great tutu great tutu great tutu", True),
    ("A soft pink tutu with three layers of tulle.", False),
])
def test_degenerate_answers(text, degenerate):
    assert evaluate.is_degenerate(text) is degenerate


def test_reference_loss_is_the_answer_tokens_nll(tiny_model, tp):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prodqa.template import render

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    ex = {"prompt": [{"role": "user", "content": "What is a tutu?"}],
          "completion": [{"role": "assistant", "content": "A skirt."}]}
    (loss,) = evaluate.reference_loss(model, tokenizer, [ex], 64)
    prompt, completion = render(ex, tokenizer)
    ids = torch.tensor([prompt + completion])
    labels = torch.tensor([[-100] * len(prompt) + completion])
    with torch.no_grad():
        expected = model(input_ids=ids, labels=labels).loss.item()
    assert loss == pytest.approx(expected, rel=1e-4)
    # Padding a second, longer example into the same batch leaves the first one's loss unchanged.
    long = {**ex, "completion": [{"role": "assistant", "content": "A skirt. " * 5}]}
    assert evaluate.reference_loss(model, tokenizer, [ex, long], 64)[0] == pytest.approx(loss, rel=1e-4)
    # Batched by length (short ones together), the losses still come back in the examples' order.
    mid = {**ex, "completion": [{"role": "assistant", "content": "A skirt. " * 2}]}
    alone = [evaluate.reference_loss(model, tokenizer, [e], 64)[0] for e in (long, ex, mid)]
    assert len(set(alone)) == 3
    assert evaluate.reference_loss(model, tokenizer, [long, ex, mid], 64) == pytest.approx(alone, rel=1e-4)
    # A budget of one token puts each example in a batch of its own: the same losses.
    assert evaluate.reference_loss(model, tokenizer, [long, ex, mid], 64, batch_tokens=1) == pytest.approx(alone, rel=1e-4)


def test_seen_questions_are_phrasings_the_product_never_had_in_training(tp):
    rows = [{"title": f"Item {i}", "content": "x"} for i in range(50)]
    k = tp.phrasings_per_product
    trained = template.build(rows, tp, train=True)[:k * len(rows)]  # the recitals (then come the reading examples)
    asked = template.questions(rows, tp, seen=True)
    for i, row in enumerate(rows):  # build() writes each product's examples together, in row order
        mine = {template.question_text(ex["prompt"]) for ex in trained[i * k:(i + 1) * k]}
        assert len(mine) == k and all(row["title"] in q for q in mine)
        assert row["title"] in asked[i] and asked[i] not in mine
    # Each product has its own order: across 50 products the held-out phrasing is not always the same one.
    assert len({q.replace(r["title"], "{title}") for q, r in zip(asked, rows)}) > 3


@pytest.mark.slow
def test_tiny_end_to_end_evaluate_both_sets_and_report(tmp_path, lively_model, other_model, params_file):
    """Base (other_model) and fine-tuned (lively_model) answer differently: each set of answers is its own
    model's, and the report puts each in its own column."""
    from stages import report as report_stage

    sample = tmp_path / "sample"
    sample.mkdir()
    for split in ("train", "test"):
        pq.write_table(pa.Table.from_pylist([{"uid": str(i), "title": f"{split} Tutu {i}",
                                              "content": "A pink tutu by Ann Cleeves, 12 inches long."}
                                             for i in range(4)]), sample / f"{split}.parquet")
    prm = params_file({"generate.max_new_tokens": 6, "evaluate.seen_examples": 3, "evaluate.unseen_examples": 2,
                       "template.max_seq_len": 64})
    for name, model in (("base", other_model), ("tuned", lively_model)):
        stage.main(["--params", prm, "--model", model, "--reader", other_model, "--sample", str(sample),
                    "--answers", str(tmp_path / "answers" / name), "--metrics", str(tmp_path / "metrics" / name)])
    metrics = json.loads((tmp_path / "metrics" / "tuned" / "metrics.json").read_text())
    assert metrics["seen"]["examples"] == 3 and metrics["unseen"]["examples"] == 2
    assert math.isclose(metrics["seen"]["perplexity"], math.exp(metrics["seen"]["loss"]), rel_tol=1e-3)
    assert {"rouge1", "rouge2", "rougeL", "bleu", "empty_answers", "degenerate_answers"} <= set(metrics["unseen"])
    seen = [json.loads(line) for line in (tmp_path / "answers" / "tuned" / "seen.jsonl").read_text().splitlines()]
    assert [a["title"] for a in seen] == ["train Tutu 0", "train Tutu 1", "train Tutu 2"]
    assert all(0 < a["confidence"] <= 1 for a in seen)
    assert all(a["recalls_another"] is None for a in seen)  # short answers name no trained description
    base_seen = [json.loads(line) for line in (tmp_path / "answers" / "base" / "seen.jsonl").read_text().splitlines()]
    assert all(a["answer"] and a["answer"] != b["answer"] for a, b in zip(seen, base_seen))  # two models, two answers
    report_stage.main(["--params", prm, "--out", str(tmp_path / "report"), "--train_plots", str(tmp_path / "none"), "--typed_metrics", str(tmp_path / "none.json"),
                       *(a for m in ("base", "tuned") for a in (f"--{m}_answers", str(tmp_path / "answers" / m),
                                                             f"--{m}_metrics", str(tmp_path / "metrics" / m / "metrics.json")))])
    report = (tmp_path / "report" / "report.md").read_text()
    assert report.startswith("# Base vs fine-tuned")
    first = report.split("### 1. ", 1)[1].split("###", 1)[0]  # the first seen product's side-by-side table
    rows = {line.split(" | ")[0].lstrip("| "): line for line in first.splitlines() if line.startswith("| ")}
    assert report_module._cell(base_seen[0]["answer"]) in rows["base"]
    assert report_module._cell(seen[0]["answer"]) in rows["fine-tuned"]
    assert (tmp_path / "report" / "metrics_bars.png").stat().st_size > 1000
    tuned = json.loads((tmp_path / "metrics" / "tuned" / "metrics.json").read_text())
    assert 0 <= tuned["confidence"]["auroc"] <= 1 and tuned["confidence"]["threshold"] == params.read_yaml(prm)["generate"]["min_confidence"]
    assert tuned["confidence"]["unseen_another_product"] == 0.0
    assert f"AUROC seen vs unseen **{tuned['confidence']['auroc']}**" in report
    assert (tmp_path / "report" / "confidence.png").stat().st_size > 1000
    qa_seen = [json.loads(line) for line in (tmp_path / "answers" / "tuned" / "qa_seen.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in qa_seen} == {"fact", "yesno", "unanswerable"} and len(qa_seen) == 3 * 3  # each product
    assert tuned["qa_seen"]["all"]["questions"] == 9 and tuned["qa_unseen"]["all"]["questions"] == 6
    assert "## Questions about the products" in report and report_module._cell(qa_seen[0]["question"], 120) in report


def test_confident_answers_count_as_from_memory_unless_they_recall_another_product():
    from prodqa.evaluate import confidence_metrics

    m = confidence_metrics([0.99, 0.98, 0.5], [0.99, 0.97, 0.2, 0.1], 0.94)
    assert (m["seen_from_memory"], m["unseen_from_memory"], m["unseen_another_product"]) == (0.6667, 0.5, 0.0)
    m = confidence_metrics([0.99, 0.98, 0.5], [0.99, 0.97, 0.2, 0.1], 0.94, [False] * 3, [True, False, True, False])
    assert (m["seen_from_memory"], m["unseen_from_memory"], m["unseen_another_product"]) == (0.6667, 0.25, 0.25)
    assert m["auroc"] == confidence_metrics([0.99, 0.98, 0.5], [0.99, 0.97, 0.2, 0.1], 0.94)["auroc"]
