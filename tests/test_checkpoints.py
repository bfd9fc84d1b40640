"""The resume protocol (prodqa.checkpoints): which checkpoint a killed run resumes from, and when it starts over."""

from prodqa.checkpoints import Checkpoints, ResumePoint, fingerprint


def test_a_checkpoint_killed_while_saving_is_skipped_for_the_one_before(tmp_path):
    """The Trainer writes trainer_state.json last: a folder without it was cut off mid-save."""
    fp = {"train": {}, "max_seq_len": 64, "inputs_sha256": "x"}
    ckpt = tmp_path / "checkpoints"
    assert Checkpoints(ckpt, fp).prepare() is None  # a fresh folder with the fingerprint
    for step in (2, 10):
        (ckpt / f"checkpoint-{step}").mkdir()
        (ckpt / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (ckpt / "checkpoint-12").mkdir()
    (ckpt / "checkpoint-12" / "adapter_model.safetensors").write_bytes(b"half")  # killed before the state
    assert Checkpoints(ckpt, fp).resume_point() == ResumePoint(ckpt / "checkpoint-10", 10)  # numeric, not text order
    assert Checkpoints(ckpt, fp).prepare().step == 10 and (ckpt / "checkpoint-12").exists()
    assert Checkpoints(ckpt, {**fp, "inputs_sha256": "other data"}).prepare() is None  # a data change starts over
    assert sorted(p.name for p in ckpt.iterdir()) == ["fingerprint.json"]


def test_the_fingerprint_is_the_params_and_what_the_input_files_hold(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("a\n")
    fp = fingerprint({"lr": 1}, [data])
    assert fingerprint({"lr": 1}, [data]) == fp and fp["lr"] == 1
    assert fingerprint({"lr": 2}, [data]) != fp
    data.write_text("b\n")  # the same file name, other data: another run
    assert fingerprint({"lr": 1}, [data]) != fp
