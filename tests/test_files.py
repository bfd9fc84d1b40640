"""files.atomic_path: an output appears whole or not at all, and a failure keeps the previous one."""

import pytest

from prodqa.files import atomic_path


@pytest.mark.parametrize("is_dir", [False, True])
def test_success_replaces_the_old_output_whole(tmp_path, is_dir):
    final = tmp_path / "out"
    if is_dir:
        final.mkdir()
        (final / "stale.txt").write_text("old")
    else:
        final.write_text("old")
    with atomic_path(final, is_dir=is_dir) as tmp:
        assert tmp.parent == final.parent and tmp != final
        (tmp / "new.txt").write_text("new") if is_dir else tmp.write_text("new")
        assert (final / "stale.txt").exists() if is_dir else final.read_text() == "old"  # untouched until the end
    if is_dir:
        assert sorted(p.name for p in final.iterdir()) == ["new.txt"]  # nothing of the old folder is left
    else:
        assert final.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("is_dir", [False, True])
def test_failure_keeps_the_old_output_and_leaves_no_temporary(tmp_path, is_dir):
    final = tmp_path / "out"
    final.mkdir() if is_dir else final.write_text("old")
    if is_dir:
        (final / "model.safetensors").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(final, is_dir=is_dir) as tmp:
            (tmp / "model.safetensors").write_text("half") if is_dir else tmp.write_text("half")
            raise RuntimeError("killed midway")
    assert ((final / "model.safetensors") if is_dir else final).read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failure_without_an_old_output_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "sub" / "out", is_dir=True) as tmp:
            (tmp / "part").write_text("x")
            raise KeyboardInterrupt
    assert list((tmp_path / "sub").iterdir()) == []
