import gzip
import json
import re

from prodqa import synth
from stages import synth as stage


def test_same_seed_same_records_other_seed_others():
    assert list(synth.records(200, 1)) == list(synth.records(200, 1))
    assert list(synth.records(200, 1)) != list(synth.records(200, 2))


def test_records_have_the_real_keys_and_types():
    for rec in synth.records(100, 3):
        assert list(rec) == ["uid", "title", "content", "target_ind", "target_rel"]
        assert isinstance(rec["uid"], str) and len(rec["uid"]) == 10
        assert all(isinstance(i, int) for i in rec["target_ind"]) and len(rec["target_ind"]) == len(rec["target_rel"])


def test_realistic_noise_and_length_distribution():
    recs = list(synth.records(20_000, 5))
    contents = [r["content"] for r in recs]
    lengths = sorted(len(c) for c in contents if c)
    assert 300 < lengths[len(lengths) // 2] < 600  # median ≈ 450 characters, as in the real file
    assert max(lengths) > 5_000
    assert 0.3 < sum(not c for c in contents) / len(contents) < 0.5  # many products have no description
    assert any("&#8217;" in c or "&#x2019;" in c for c in contents) and any("&amp;" in c for c in contents)
    assert not any(re.search(r"&amp;#?\w+;", c) for c in contents)  # entities escaped once, as in the real file
    assert any(c.endswith("--This text refers to thePaperbackedition.") for c in contents)
    assert any("<br>" in c for c in contents) and any("http://" in c for c in contents)
    assert any(r["content"] == r["title"] for r in recs)
    pairs = [(r["title"], r["content"]) for r in recs if r["content"]]
    assert len(set(pairs)) < len(pairs)  # exact duplicates exist


def test_descriptions_name_their_title_about_as_often_as_real_ones():
    """The title → description link a model can learn: ~60% of real descriptions name a title word."""
    named = []
    for rec in synth.records(2000, 4):
        if len(rec["content"]) > 100 and rec["content"] != rec["title"]:
            title_words = {w for w in re.findall(r"[a-z]+", rec["title"].lower()) if len(w) > 3}
            named.append(bool(title_words & set(re.findall(r"[a-z]+", rec["content"].lower()))))
    assert len(named) > 1000 and 0.45 < sum(named) / len(named) < 0.75


def test_descriptions_share_little_but_function_words():
    """As hard as real text: two products' descriptions share about as much as two real ones do
    (ROUGE-L ≈ 0.10 on the real development records), so one cannot be guessed from the others."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    texts = [r["content"] for r in synth.records(3000, 6) if 200 < len(r["content"]) < 2000]
    pairs = zip(texts[:300], texts[300:600])
    scores = [scorer.score(a, b)["rougeL"].fmeasure for a, b in pairs]
    assert 0.05 < sum(scores) / len(scores) < 0.15
    kinds = {"book": 0, "media": 0, "goods": 0}
    for text in texts:  # the three kinds of product each have their own sentences
        kinds["goods" if "verified buyer" in text or "warranty" in text else
              "media" if "Tracks:" in text or "Running time" in text else "book"] += 1
    assert all(n > 20 for n in kinds.values()), kinds


def test_stage_writes_gzip_json_lines(tmp_path, params_file):
    out = tmp_path / "trn.json.gz"
    stage.main(["--params", params_file({"synth.n_products": 50}), "--out", str(out)])
    lines = gzip.decompress(out.read_bytes()).decode().splitlines()
    assert len(lines) == 50 and json.loads(lines[0])["uid"]


def test_stage_output_is_byte_identical_across_runs(tmp_path, params_file, monkeypatch):
    """The same params make the same file, byte for byte: DVC hashes it, and a fresh `make repro` must match
    dvc.lock (a gzip header holding the write time would not)."""
    import time as time_module

    params = params_file({"synth.n_products": 20})
    first, second = tmp_path / "a.json.gz", tmp_path / "b.json.gz"
    stage.main(["--params", params, "--out", str(first)])
    monkeypatch.setattr(time_module, "time", lambda: 2_000_000_000.0)  # another write time
    stage.main(["--params", params, "--out", str(second)])
    assert first.read_bytes() == second.read_bytes()
