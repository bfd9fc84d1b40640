import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prodqa import clean, params
from prodqa.files import DataError
from stages import clean as stage

LONG = "A sturdy ballet tutu with three layers of tulle and an elastic waist. "  # 70 chars


@pytest.fixture
def p(shipped):
    return params.parse("clean", {**shipped["clean"], "min_chars": 20, "max_chars": 400})


def run(p, rows, **overrides):
    p = p.model_copy(update=overrides)
    batch = pa.RecordBatch.from_pylist(
        [{"uid": str(i), "title": t, "content": c} for i, (t, c) in enumerate(rows)])
    cleaner = clean.Cleaner(p)
    return cleaner(batch).to_pylist(), cleaner.counts


@pytest.mark.parametrize("raw, expected", [
    ("It&#8217;s pink &amp; fluffy &mdash; really.", "It\u2019s pink & fluffy \u2014 really."),
    ("It&#x2019;s&#160;pink, escaped once", "It\u2019s pink, escaped once"),
    # Unescaped once: "&amp;amp;" is the text "&amp;" (a page about HTML), not "&".
    ("Write &amp;amp; for &amp; and &amp;#8217; for \u2019 in HTML", "Write &amp; for & and &#8217; for \u2019 in HTML"),
    ("<p><b>Bold</b> claim<br/>next line</p>", "Bold claim next line"),
    ("See http://www.example.com/p?x=1 and www.shop.com now", "See and now"),
    ("Mail sales@example.co.uk today", "Mail today"),
    ("Great read.--This text refers to thePaperbackedition.", "Great read."),
    ("Rare. --This text refers to an out of print or unavailable edition of this title.", "Rare."),
    ("  lots \t of\n\n space\u00a0here  ", "lots of space here"),
])
def test_each_text_rule(p, raw, expected):
    rows, _ = run(p, [("Some Title", LONG + raw)])
    assert rows[0]["content"] == (LONG + expected).strip()


def test_text_rules_can_be_switched_off(p):
    raw = "It&#8217;s <b>here</b> http://x.com --This text refers to thePaperbackedition."
    rows, counts = run(p, [("Title", raw + "  " + LONG)], html_unescape=False, strip_html_tags=False,
                       remove_urls=False, remove_boilerplate=False, normalize_whitespace=False)
    assert rows[0]["content"] == raw + "  " + LONG
    assert not any(n for k, n in counts.items() if k.startswith("content_changed"))


def test_rule_counts(p):
    rows, counts = run(p, [("Tutu 1", "&amp; " + LONG), ("Tutu 2", "<i>x</i> " + LONG), ("Tutu 3", LONG)])
    assert counts["content_changed_html_unescape"] == 1
    assert counts["content_changed_strip_html_tags"] == 1
    assert counts["rows_in"] == 3 and counts["rows_out"] == 3


@pytest.mark.parametrize("rows, rule, kept", [
    ([("ab", LONG), ("abc", LONG + "x")], "short_title", ["abc"]),
    ([("Title", "too short"), ("Title 2", LONG)], "too_short", ["Title 2"]),
    ([("Title", LONG * 10), ("Title 2", LONG)], "too_long", ["Title 2"]),
    ([("Girls Ballet Tutu, Neon Pink", "girls ballet tutu neon pink"), ("Other", LONG)], "title_equals_content", ["Other"]),
    ([("Same", LONG), ("Same", LONG), ("Other", LONG)], "duplicate", ["Same", "Other"]),
    ([("Same Title", LONG), ("same title!", LONG + " More."), ("Other", LONG)], "repeated_title", ["Same Title", "Other"]),
])
def test_each_drop_rule(p, rows, rule, kept):
    p = p.model_copy(update={"min_chars": 40})
    out, counts = run(p, rows)
    assert [r["title"] for r in out] == kept
    assert counts[f"dropped_{rule}"] == len(rows) - len(kept)
    # Switched off, the same rule drops nothing.
    switch = {"short_title": {"min_title_chars": 0}, "too_short": {"min_chars": 0}, "too_long": {"max_chars": 10**6},
              "title_equals_content": {"drop_title_equals_content": False}, "duplicate": {"drop_duplicates": False,
              "drop_repeated_titles": False}, "repeated_title": {"drop_repeated_titles": False}}[rule]
    _, counts = run(p.model_copy(update=switch), rows)
    assert counts[f"dropped_{rule}"] == 0


def test_duplicates_are_found_across_batches(tmp_path, p):
    rows = [{"uid": str(i), "title": f"Title {i % 7}", "content": LONG} for i in range(50)]
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    counts = clean.clean(src, tmp_path / "out.parquet", p.model_copy(update={"batch_rows": 8}))
    out = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [r["uid"] for r in out] == [str(i) for i in range(7)]
    assert counts["dropped_duplicate"] == 43 and counts["rows_out"] == 7


def test_stage_smoke(tmp_path, params_file):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist([{"uid": "1", "title": "Tutu", "content": "&amp; " + LONG * 2}]), src)
    stage.main(["--params", params_file(), "--src", str(src), "--out", str(tmp_path / "o.parquet"),
                "--metrics", str(tmp_path / "m.json")])
    assert pq.read_table(tmp_path / "o.parquet")["content"][0].as_py().startswith("& A sturdy")


def _invalid_utf8_strings(values: list[bytes]) -> pa.Array:
    """A string array holding raw bytes, unvalidated: what a broken writer can leave in a Parquet file."""
    offsets = [0]
    for v in values:
        offsets.append(offsets[-1] + len(v))
    return pa.Array.from_buffers(pa.string(), len(values), [None, pa.py_buffer(pa.array(offsets, pa.int32()).buffers()[1]),
                                                            pa.py_buffer(b"".join(values))])


@pytest.mark.parametrize("table, message", [
    (lambda: pa.table({"uid": ["1"], "title": ["A title"]}), "no column 'content'"),
    (lambda: pa.table({"uid": ["1"], "title": ["A title"], "content": [3]}), "column 'content' is int64, not a string"),
    (lambda: pa.table({"uid": pa.array(["1", "2"]), "title": pa.array(["A title", "B title"]),
                       "content": _invalid_utf8_strings([b"fine text", b"bad \xff\xfe text"])}),
     "invalid data in rows 0-1"),
])
def test_untrusted_input_fails_with_one_line_not_a_signal(tmp_path, params_file, table, message):
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(table(), src)
    with pytest.raises(DataError, match=message) as err:
        stage.main(["--params", params_file(), "--src", str(src), "--out", str(out), "--metrics", str(tmp_path / "m.json")])
    assert str(src) in str(err.value) and "\n" not in str(err.value) and not out.exists()


def test_a_file_that_is_not_parquet_is_one_line(tmp_path, params_file):
    src = tmp_path / "in.parquet"
    src.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        stage.main(["--params", params_file(), "--src", str(src), "--out", str(tmp_path / "o"), "--metrics", str(tmp_path / "m")])
