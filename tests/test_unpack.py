import gzip
import json
import zipfile

import pyarrow.parquet as pq
import pytest

from prodqa import synth, unpack
from prodqa.files import DataError
from stages import unpack as stage

from .conftest import jsonl, product

OPTS = dict(keep_targets=False, block_bytes=65536, max_reported_errors=5)


def run(src, tmp_path, **kw):
    out = tmp_path / "out.parquet"
    metrics = unpack.unpack(src, out, **{**OPTS, **kw})
    return pq.read_table(out), metrics


@pytest.fixture
def good(tmp_path):
    return jsonl(tmp_path / "trn.json", [product(i) for i in range(50)])


def test_plain_gz_and_zip_give_the_same_table(tmp_path, good):
    gz = tmp_path / "trn.json.gz"
    gz.write_bytes(gzip.compress(good.read_bytes()))
    z = tmp_path / "LF-AmazonTitles-1.3M.raw.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("LF-AmazonTitles-1.3M/lbl.json.gz", gzip.compress(b"{}\n"))
        zf.writestr("LF-AmazonTitles-1.3M/trn.json.gz", gz.read_bytes())
    tables = [run(src, tmp_path)[0] for src in (good, gz, z)]
    assert tables[0].column_names == ["uid", "title", "content"]
    assert tables[0].num_rows == 50
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])


def test_zip_with_plain_trn_json(tmp_path, good):
    z = tmp_path / "data.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("some/folder/trn.json", good.read_bytes())
    assert run(z, tmp_path)[0].num_rows == 50


def test_keep_targets(tmp_path, good):
    table, _ = run(good, tmp_path, keep_targets=True)
    assert table.column("target_ind").to_pylist()[3] == [3]
    assert table.column("target_rel").to_pylist()[3] == [1.0]


def test_bad_lines_are_skipped_counted_and_located(tmp_path):
    rows = [product(0), "{not json", "[1, 2]", {"uid": "1", "title": "t"}, {"uid": "2", "title": 5, "content": "c"},
            b'{"uid": "3", "title": "bad \xff utf8", "content": "x"}', "", product(7)]
    table, m = run(jsonl(tmp_path / "trn.json", rows), tmp_path)
    assert table.column("uid").to_pylist() == ["0000000000", "0000000007"]
    assert m["skipped_by_kind"] == {"malformed_json": 1, "not_an_object": 1, "missing_field": 1, "wrong_type": 1,
                                    "invalid_utf8": 1, "blank_line": 1}
    assert m["skipped_examples"][0].startswith("line 2: malformed_json")
    assert any(e.startswith("line 4: missing_field: no 'content'") for e in m["skipped_examples"])


def test_bad_lines_far_into_a_big_file_keep_their_line_numbers(tmp_path):
    rows = [product(i) for i in range(3000)]
    rows[2500] = "oops"
    table, m = run(jsonl(tmp_path / "trn.json", rows), tmp_path, block_bytes=65536)
    assert table.num_rows == 2999
    assert m["skipped_examples"] == ["line 2501: malformed_json: Expecting value: line 1 column 1 (char 0)"]


def test_a_line_longer_than_a_block(tmp_path):
    rows = [product(0, content="x" * 200_000), product(1)]
    table, _ = run(jsonl(tmp_path / "trn.json", rows), tmp_path, block_bytes=65536)
    assert [len(c) for c in table.column("content").to_pylist()][0] == 200_000


def _gz_cut_in_half() -> bytes:
    data = gzip.compress(b"".join(json.dumps(product(i)).encode() + b"\n" for i in range(2000)))
    return data[: len(data) // 2]


@pytest.mark.parametrize("make, message", [
    (lambda p: p, "no such file"),
    (lambda p: (p.write_bytes(b""), p)[1], "empty file"),
    (lambda p: (p.write_bytes(_gz_cut_in_half()), p)[1], "truncated"),
    (lambda p: (zipfile.ZipFile(p, "w").writestr("x/tst.json.gz", b""), p)[1], "zip has no trn.json"),
    (lambda p: (p.write_text("nope\n[]\n"), p)[1], "none of its 2 lines is a usable record"),
])
def test_unusable_files_fail_with_one_line_naming_the_file(tmp_path, make, message):
    src = make(tmp_path / "input.bin")
    out = tmp_path / "out.parquet"
    with pytest.raises(DataError, match=message) as err:
        unpack.unpack(src, out, **OPTS)
    assert str(src) in str(err.value) and "\n" not in str(err.value)
    assert not out.exists() and list(tmp_path.glob(".out*")) == []  # nothing half-written


def test_stage_reports_error_in_one_line_and_exit_2(tmp_path, params_file, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["unpack", "--params", params_file(), "--raw", str(tmp_path / "missing.json"),
                                     "--out", str(tmp_path / "o.parquet"), "--metrics", str(tmp_path / "m.json")])
    from prodqa.stage import run as run_stage
    with pytest.raises(SystemExit) as exit_:
        run_stage(stage.main)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'missing.json'}: no such file"


def test_stage_smoke_on_generated_data(tmp_path, params_file):
    raw = tmp_path / "trn.json.gz"
    synth.write(str(raw), 300, seed=1)
    stage.main(["--params", params_file(), "--raw", str(raw), "--out", str(tmp_path / "p.parquet"),
                "--metrics", str(tmp_path / "m.json")])
    assert pq.read_metadata(tmp_path / "p.parquet").num_rows == 300


def _zip(path, data: bytes, member="LF-AmazonTitles-1.3M/trn.json", method=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        zf.writestr(member, data)
    return path


def _records(n=200) -> bytes:
    return b"".join(json.dumps(product(i)).encode() + b"\n" for i in range(n))


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_truncated_zip_fails_like_a_truncated_gzip(tmp_path, method):
    z = _zip(tmp_path / "data.zip", _records(), method=method)
    z.write_bytes(z.read_bytes()[: z.stat().st_size * 2 // 3])  # cut short: stored JSON lines are still readable
    with pytest.raises(DataError, match="truncated or corrupt zip"):
        run(z, tmp_path)
    assert not (tmp_path / "out.parquet").exists()


def test_corrupt_zip_member_fails_its_crc_check(tmp_path):
    z = _zip(tmp_path / "data.zip", _records())
    raw = bytearray(z.read_bytes())
    at = raw.index(b'"title"', 2000)
    raw[at + 10] ^= 0x01  # one flipped bit in the stored member
    z.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="corrupt or truncated compressed data.*CRC"):
        run(z, tmp_path)
    assert not (tmp_path / "out.parquet").exists()


def test_member_with_an_absurd_size_is_refused_before_inflating(tmp_path):
    z = _zip(tmp_path / "bomb.zip", b"\n" * (50 * 1024 * 1024), member="trn.json", method=zipfile.ZIP_DEFLATED)
    assert z.stat().st_size < 100_000  # 50 MiB of newlines deflate ~1000x
    with pytest.raises(DataError, match=r"trn\.json: claims 52428800 bytes from \d+ compressed .*refused"):
        run(z, tmp_path)


@pytest.mark.parametrize("block_bytes", [65536, 70000])  # the last line inside a block, and across a block edge
def test_a_last_line_without_a_newline_is_read(tmp_path, block_bytes):
    """Editors and `head -c` leave files whose last line has no newline: it is a product like the others."""
    raw = b"".join(json.dumps(product(i)).encode() + b"\n" for i in range(400)).rstrip(b"\n")
    (tmp_path / "trn.json").write_bytes(raw)
    gz = tmp_path / "trn.json.gz"
    gz.write_bytes(gzip.compress(raw))
    for src in (tmp_path / "trn.json", gz):
        table, m = run(src, tmp_path, block_bytes=block_bytes)
        assert table.num_rows == 400 and table.column("uid").to_pylist()[-1] == "0000000399"
        assert m["skipped_by_kind"] == {}
