import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prodqa import params, sample
from stages import sample as stage


def catalog(n=600, repeat_every=0):
    rows = []
    for i in range(n):
        title = f"Product {i // repeat_every if repeat_every else i}"
        rows.append({"uid": str(i), "title": title if i % 2 else title.upper() + "!", "content": "x" * (50 + 7 * i)})
    return pa.Table.from_pylist(rows)


@pytest.fixture
def p(shipped):
    return params.parse("sample", {**shipped["sample"], "n_products": 200, "val_frac": 0.1, "test_frac": 0.1,
                                   "length_buckets": [1000, 2000, 3000]})


def test_sizes_and_strata(p):
    parts, m = sample.sample(catalog(), p)
    assert sum(t.num_rows for t in parts.values()) == m["sampled"] == 200
    assert list(m["by_length_bucket"].values()) == [50, 50, 50, 50]  # every bucket equally represented
    assert m["test_rows"] == 20 and m["validation_rows"] == 20


def test_small_bucket_gives_its_share_to_the_others(p):
    p = p.model_copy(update={"length_buckets": [60]})  # only 2 rows under 60 chars
    _, m = sample.sample(catalog(), p)
    assert m["by_length_bucket"] == {"0-59": 2, ">=60": 198}


@pytest.mark.parametrize("repeat_every", [1, 3])
def test_no_title_in_two_splits(p, repeat_every):
    parts, _ = sample.sample(catalog(repeat_every=repeat_every), p)
    keys = {name: set(sample.title_key(t["title"]).to_pylist()) for name, t in parts.items()}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["validation"]
    assert not keys["validation"] & keys["test"]
    assert all(keys[s] for s in sample.SPLITS) and not keys[sample.READING]  # reading_products 0: none


def test_reading_products_are_outside_the_sample_and_its_groups(p):
    """The reading split's products are none of the sampled rows, and share no title (nor description) with one:
    a reading example never shows a test product's description under another name."""
    parts, m = sample.sample(catalog(repeat_every=3), p.model_copy(update={"reading_products": 30}))
    sampled = {u for s in sample.SPLITS for u in parts[s]["uid"].to_pylist()}
    reading = parts[sample.READING]
    assert m["reading_rows"] == reading.num_rows == 30
    assert not sampled & set(reading["uid"].to_pylist())
    keys = {name: set(sample.title_key(t["title"]).to_pylist()) for name, t in parts.items()}
    assert not keys[sample.READING] & (keys["train"] | keys["validation"] | keys["test"])


def test_seed_changes_the_sample(p):
    """The seed decides the sample: the same seed twice is identical (an unseeded RNG fails here), another differs."""
    a, _ = sample.sample(catalog(), p)
    again, _ = sample.sample(catalog(), p)
    b, _ = sample.sample(catalog(), p.model_copy(update={"seed": p.seed + 1}))
    assert all(a[s]["uid"].to_pylist() == again[s]["uid"].to_pylist() for s in sample.SPLITS)
    assert a["test"]["uid"].to_pylist() != b["test"]["uid"].to_pylist()


def test_same_params_give_byte_identical_files(tmp_path, params_file):
    src = tmp_path / "clean.parquet"
    pq.write_table(catalog(), src)
    digests = []
    for run in range(2):
        out = tmp_path / f"out{run}"
        stage.main(["--params", params_file({"sample.n_products": 100}), "--src", str(src), "--out", str(out),
                    "--metrics", str(tmp_path / "m.json")])
        digests.append({f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(out.iterdir())})
    assert digests[0] == digests[1] and set(digests[0]) == {f"{s}.parquet" for s in (*sample.SPLITS, sample.READING)}


def test_stratified_indices_are_a_subset_without_repeats(p):
    idx = sample.stratified_indices(np.arange(1000), p, np.random.default_rng(0))
    assert len(idx) == len(set(idx.tolist())) == 200 and idx.max() < 1000


def test_products_sharing_a_description_share_a_split(p):
    """A series' one blurb under several titles: were its titles split, an 'unseen' product's text was trained on."""
    rows = catalog().to_pylist()
    for i in range(0, 120, 3):  # 40 series of 3 titles each, one description per series
        for row in rows[i:i + 3]:
            row["content"] = f"The blurb of series {i}. " * (5 + i % 50)
    parts, m = sample.sample(pa.Table.from_pylist(rows), p)
    where = {c: name for name, t in parts.items() for c in t["content"].to_pylist()}
    for name, t in parts.items():
        for c in t["content"].to_pylist():
            assert where[c] == name
    assert m["shared_description_rows"] > 0
    assert sum(t.num_rows for t in parts.values()) == m["sampled"]


def test_product_groups_link_titles_and_descriptions_transitively():
    # a-x share a title; x and y share a description; z stands alone
    groups = sample.product_groups(["a", "a", "b", "c"], ["1", "2", "2", "3"])
    assert groups[0] == groups[1] == groups[2] != groups[3]


BLURB = ("Mog the forgetful cat is back in a new adventure for the very young, with Judith Kerr's warm pictures "
         "of the Thomas family at home, a tale that has delighted children for forty years.")


def test_near_duplicates_are_pairs_this_alike_and_no_others():
    half = BLURB[: len(BLURB) // 2]
    contents = [BLURB, BLURB.replace("new", "fresh"), BLURB.upper(), "Another book about a dog and a ball entirely.", half]
    sets = [sample.shingles(c) for c in contents]
    assert 0.8 < sample.jaccard(sets[0], sets[1]) and 0.4 < sample.jaccard(sets[0], sets[4]) < 0.5
    assert sample.near_duplicates(contents, 0.5) == [(0, 1), (0, 2), (1, 2)]  # case is no difference; half is not
    assert sample.near_duplicates(contents, 0.4) == [(0, 1), (0, 2), (0, 4), (1, 2), (2, 4)]  # (1, 4): 0.35


def test_products_with_near_identical_descriptions_share_a_split(p):
    """A series' blurb with one word changed per title ("Mog in the Dark" / "Mog on Fox Night"): were they split,
    an 'unseen' product's description was all but trained on."""
    rows = catalog().to_pylist()
    for i in range(0, 120, 3):  # 40 series of 3 titles, their blurbs the same but for one word of each title
        for k, row in enumerate(rows[i:i + 3]):
            row["content"] = f"Series {i} book {k}: " + BLURB.replace("forty", f"{40 + k}") + f" Volume of series {i}." * (i % 40)
    parts, m = sample.sample(pa.Table.from_pylist(rows), p)
    split_of = {row["uid"]: name for name, t in parts.items() for row in t.to_pylist()}
    for i in range(0, 120, 3):
        assert len({split_of[str(j)] for j in range(i, i + 3) if str(j) in split_of}) <= 1
    assert m["shared_description_rows"] == 0 and m["grouped_rows"] > 30
