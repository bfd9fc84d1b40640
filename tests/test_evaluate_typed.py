import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prodqa import evaluate_typed, params, typed
from prodqa.catalog import build
from stages import evaluate_typed as stage


def test_ambiguous_partials_count_titles_that_share_the_beginning():
    rows = [{"title": "Jane's Guns Recognition Guide"}, {"title": "Lodge Cast Iron Skillet"}]
    catalog = [r["title"] for r in rows] + ["Jane's Guns Recognition Handbook", "Lodge Camping Chair"]
    assert typed.partial("Jane's Guns Recognition Guide") == "Jane's Guns"
    assert evaluate_typed.ambiguous_partials(rows, catalog) == 1  # "Lodge Cast" begins no other title


@pytest.mark.slow
def test_stage_writes_each_way_for_the_fine_tuned_model(tmp_path, lively_model, params_file):
    sample = tmp_path / "sample"
    sample.mkdir()
    pq.write_table(pa.Table.from_pylist([{"uid": str(i), "title": f"Dickies Ballet Tutu Size {i}", "content": "A pink tutu."}
                                         for i in range(4)]), sample / "train.parquet")
    build(sample / "train.parquet", tmp_path / "catalog.sqlite")
    prm = params_file({"generate.max_new_tokens": 4, "evaluate.typed_examples": 3, "template.max_seq_len": 64})
    stage.main(["--params", prm, "--model", lively_model, "--sample", str(sample), "--catalog", str(tmp_path / "catalog.sqlite"),
                "--answers", str(tmp_path / "a"), "--metrics", str(tmp_path / "m")])
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert sorted(metrics) == [f"seen_{w}" for w in sorted(typed.WAYS)]
    assert metrics["seen_partial"]["ambiguous"] == 3  # "Dickies Ballet Tutu" begins every other title
    lower = [json.loads(line) for line in (tmp_path / "a" / "seen_lower.jsonl").read_text().splitlines()]
    assert [r["question"] for r in lower] == [f"Tell me about dickies ballet tutu size {i}." for i in range(3)]
    first = params.load(params.Template, prm).questions[0]
    assert [r["ask_question"] for r in lower] == [first.format(title=f"Dickies Ballet Tutu Size {i}") for i in range(3)]
    assert metrics["seen_lower"]["ask_found"] == 1.0 and metrics["seen_lower"]["asked_back"] == 0.0
    threshold = params.load(params.Generate, prm).min_confidence
    assert metrics["seen_lower"]["ask_from_memory"] == sum(r["ask_confidence"] >= threshold for r in lower) / 3
    partial = [json.loads(line) for line in (tmp_path / "a" / "seen_partial.jsonl").read_text().splitlines()]
    assert all(r["asked_back"] for r in partial) and metrics["seen_partial"]["asked_back"] == 1.0  # which size?
    assert [r["ask_question"] for r in partial] == [r["ask_question"] for r in lower]  # the user picks theirs
    assert metrics["seen_lower"]["ask_rougeL"] == metrics["seen_partial"]["ask_rougeL"]  # one answer per product
