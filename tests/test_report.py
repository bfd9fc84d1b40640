from prodqa import report


def test_report_markdown_has_both_sets_both_answers_and_scores():
    m = {"rouge1": 0.1, "rouge2": 0.0, "rougeL": 0.1, "bleu": 1.0, "loss": 3.0, "perplexity": 20.1,
         "empty_answers": 0, "degenerate_answers": 1, "examples": 1}
    row = {"title": "Tutu | pink", "question": "What is Tutu?", "reference": "A skirt.", "answer": "", "rougeL": 0.0}
    metrics = {"base": {"seen": m, "unseen": m}, "tuned": {"seen": {**m, "rougeL": 0.5}, "unseen": {**m, "rougeL": 0.2}}}
    answers = {"base": {"seen": [row], "unseen": [row]},
               "tuned": {"seen": [{**row, "answer": "A pink skirt.", "rougeL": 0.5}], "unseen": [row]}}
    md = report.markdown(metrics, answers, 1)
    assert "| rougeL | 0.1 | 0.5 | 0.1 | 0.2 |" in md
    assert "| base | *(empty)* | 0.000 |" in md and "| fine-tuned | A pink skirt. | 0.500 |" in md
    assert "Tutu \\| pink" in md  # table cells are escaped
    assert md.index("## Seen") < md.index("## Unseen")
