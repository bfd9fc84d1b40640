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


def test_report_shows_confidence_and_the_typed_ways():
    m = {"rouge1": 0.1, "rouge2": 0.0, "rougeL": 0.1, "bleu": 1.0, "loss": 3.0, "perplexity": 20.1, "confidence": 0.7,
         "empty_answers": 0, "degenerate_answers": 1, "examples": 1}
    row = {"title": "Tutu", "question": "What is Tutu?", "reference": "A skirt.", "answer": "A skirt.", "rougeL": 1.0,
           "confidence": 0.99}
    confidence = {"auroc": 0.96, "threshold": 0.94, "seen_from_memory": 0.95, "unseen_from_memory": 0.05}
    metrics = {"base": {"seen": m, "unseen": m}, "tuned": {"seen": {**m, "rougeL": 0.9}, "unseen": m, "confidence": confidence}}
    answers = {model: {"seen": [row], "unseen": [row]} for model in ("base", "tuned")}
    typed = {"seen_lower": {"rougeL": 0.5, "confidence": 0.8, "from_memory": 0.4, "examples": 20},
             "seen_partial": {"rougeL": 0.6, "confidence": 0.9, "from_memory": 0.5, "examples": 20, "ambiguous": 3}}
    md = report.markdown(metrics, answers, 1, typed)
    assert "AUROC seen vs unseen **0.96**" in md and "**95%** of seen questions, **5%** of unseen" in md
    assert "| fine-tuned | A skirt. | 1.000 | 0.99 |" in md
    assert "| exact (the seen set) | 0.9 | 0.7 | 0.95 |" in md and "| lower | 0.5 | 0.8 | 0.4 |" in md
    assert "3 of 20 partial titles begin another trained product's title too." in md
