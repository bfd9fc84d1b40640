"""No byte of input crashes a data stage: random bytes, random JSON, mutated real-looking lines.

Each generated file goes through ``unpack`` → ``clean`` → ``sample`` (their ``main``s, as DVC runs them).
A stage may only succeed or stop with DataError (the one ``error:`` line); on success every bad line is
counted by kind and every string in the Parquet output is valid UTF-8; on failure no output is left.
CI runs a seeded few hundred examples; PRODQA_FUZZ_EXAMPLES=20000 runs longer (see README, "Bad input").
"""

import json
import os

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prodqa.files import DataError
from stages import clean, sample, unpack

from .conftest import product

EXAMPLES = int(os.environ.get("PRODQA_FUZZ_EXAMPLES", "250"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
good_lines = st.integers(0, 10**6).map(lambda i: json.dumps(product(i)).encode())


@st.composite
def mutated(draw) -> bytes:
    """A good line with a few bytes replaced, inserted or cut: broken escapes, invalid UTF-8, truncation."""
    line = bytearray(draw(good_lines))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(line) - 1))
        op = draw(st.sampled_from(["replace", "insert", "cut"]))
        junk = draw(st.sampled_from([b"\xff", b"\xc3", b"\\ud800", b"\\udfff\\ud800", b'"', b"\\", b"\x00", b"{", b"]"]))
        if op == "replace":
            line[i:i + len(junk)] = junk
        elif op == "insert":
            line[i:i] = junk
        else:
            del line[i:]
            break
    return bytes(line)


@st.composite
def odd_records(draw) -> bytes:
    """Objects with the right keys and wrong, odd or deeply nested values."""
    rec = product(draw(st.integers(0, 10**6)))
    key = draw(st.sampled_from(["uid", "title", "content", "target_ind", "target_rel"]))
    rec[key] = draw(json_values | st.text(min_size=1, max_size=200))
    text = json.dumps(rec, ensure_ascii=draw(st.booleans()))  # lone surrogates survive as escapes or raw
    return text.encode("utf-8", "surrogatepass")


lines = st.one_of(good_lines, good_lines, mutated(), odd_records(), json_values.map(lambda v: json.dumps(v).encode()),
                  st.binary(max_size=80))


def run_stage(main, argv) -> bool:
    """True if the stage succeeded, False if it stopped with the one-line error; anything else fails the test."""
    try:
        main(argv)
        return True
    except DataError as err:
        assert "\n" not in str(err) and str(err)
        return False


def assert_valid_strings(path):
    table = pq.read_table(path)
    table.validate(full=True)  # raises on invalid UTF-8
    for name in ("uid", "title", "content"):
        for value in table[name].to_pylist():
            value.encode("utf-8")  # no lone surrogates either


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(file_lines=st.lists(lines, min_size=1, max_size=25), gz=st.booleans())
def test_no_input_crashes_the_data_stages(tmp_path_factory, params_file, file_lines, gz):
    tmp = tmp_path_factory.mktemp("fuzz")
    raw = tmp / ("trn.json.gz" if gz else "trn.json")
    data = b"\n".join(file_lines) + b"\n"
    if gz:
        import gzip

        data = gzip.compress(data)
    raw.write_bytes(data)
    prm = params_file({"sample.n_products": 20, "clean.min_chars": 10, "unpack.block_bytes": 65536})
    up = tmp / "unpack.parquet"
    if not run_stage(unpack.main, ["--params", prm, "--raw", str(raw), "--out", str(up), "--metrics", str(tmp / "u.json")]):
        assert not up.exists() and not (tmp / "u.json").exists()
        return
    metrics = json.loads((tmp / "u.json").read_text())
    assert metrics["lines"] - metrics["records"] == metrics["skipped"] == sum(metrics["skipped_by_kind"].values())
    assert_valid_strings(up)
    cl = tmp / "clean.parquet"
    assert run_stage(clean.main, ["--params", prm, "--src", str(up), "--out", str(cl), "--metrics", str(tmp / "c.json")])
    assert_valid_strings(cl)
    out = tmp / "sample"
    if run_stage(sample.main, ["--params", prm, "--src", str(cl), "--out", str(out), "--metrics", str(tmp / "s.json")]):
        for split in ("train", "validation", "test"):
            assert_valid_strings(out / f"{split}.parquet")
    else:
        assert not out.exists()


@pytest.mark.parametrize("bad, kind", [
    (b'{"uid":"u","title":"bad \xff\xfe","content":"some text"}', "invalid_utf8"),
    (b'{"uid":"u","title":"t\\ud800x","content":"some text"}', "invalid_unicode"),
    (b'{"uid":"u","title":"t","content":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "malformed_json"),
])
def test_reported_bad_lines_are_skipped_and_counted(tmp_path, params_file, bad, kind):
    raw = tmp_path / "trn.json"
    raw.write_bytes(b"\n".join([json.dumps(product(1)).encode(), bad, json.dumps(product(2)).encode()]) + b"\n")
    prm = params_file()
    unpack.main(["--params", prm, "--raw", str(raw), "--out", str(tmp_path / "u.parquet"), "--metrics", str(tmp_path / "u.json")])
    metrics = json.loads((tmp_path / "u.json").read_text())
    assert metrics["records"] == 2 and metrics["skipped_by_kind"] == {kind: 1}
    assert metrics["skipped_examples"][0].startswith(f"line 2: {kind}")
    assert_valid_strings(tmp_path / "u.parquet")
    clean.main(["--params", prm, "--src", str(tmp_path / "u.parquet"), "--out", str(tmp_path / "c.parquet"),
                "--metrics", str(tmp_path / "c.json")])
