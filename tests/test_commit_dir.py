"""commit_dir swaps a whole folder in; recover_dir finishes or rolls back a swap a kill interrupted."""
import pytest

from compress.checkpoint import commit_dir, recover_dir
from compress.errors import CheckpointError


def _fill(text, fail_after_first=False):
    def write(d):
        (d / "a.txt").write_text(text)
        if fail_after_first:
            raise KeyboardInterrupt  # a kill between the two files
        (d / "manifest.json").write_text(text)
    return write


def _read(d):
    return (d / "a.txt").read_text(), (d / "manifest.json").read_text()


def test_commit_replaces_the_whole_folder_and_leaves_no_temporaries(tmp_path):
    final = tmp_path / "best"
    commit_dir(final, _fill("one"))
    (final / "stale.txt").write_text("x")
    assert commit_dir(final, _fill("two")) == final
    assert _read(final) == ("two", "two") and not (final / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_an_interrupted_write_leaves_the_old_folder_untouched(tmp_path):
    final = tmp_path / "best"
    commit_dir(final, _fill("one"))
    with pytest.raises(KeyboardInterrupt):
        commit_dir(final, _fill("two", fail_after_first=True))
    assert _read(final) == ("one", "one")
    assert (tmp_path / ".best.new" / "a.txt").read_text() == "two"
    recover_dir(final)
    assert _read(final) == ("one", "one") and sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_a_write_without_its_marker_is_refused(tmp_path):
    final = tmp_path / "last"
    commit_dir(final, _fill("one"), complete_marker="a.txt")
    with pytest.raises(CheckpointError, match="without state.json"):
        commit_dir(final, _fill("two"), complete_marker="state.json")
    assert (final / "a.txt").read_text() == "one"


def _swap_state(tmp_path, new_complete: bool, old: bool):
    final, new, prev = tmp_path / "last", tmp_path / ".last.new", tmp_path / ".last.old"
    new.mkdir()
    (new / "a.txt").write_text("new")
    if new_complete:
        (new / "manifest.json").write_text("new")
    if old:
        prev.mkdir()
        (prev / "a.txt").write_text("old")
        (prev / "manifest.json").write_text("old")
    return final


def test_recover_promotes_a_complete_new_folder(tmp_path):
    final = _swap_state(tmp_path, new_complete=True, old=True)
    recover_dir(final)
    assert _read(final) == ("new", "new") and sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_recover_restores_the_old_folder_when_the_new_one_is_partial(tmp_path):
    final = _swap_state(tmp_path, new_complete=False, old=True)
    recover_dir(final)
    assert _read(final) == ("old", "old") and sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_recover_keeps_an_existing_folder_and_drops_both_temporaries(tmp_path):
    final = _swap_state(tmp_path, new_complete=True, old=True)
    final.mkdir()
    (final / "a.txt").write_text("kept")
    (final / "manifest.json").write_text("kept")
    recover_dir(final)
    assert _read(final) == ("kept", "kept") and sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_recover_with_nothing_to_do_creates_nothing(tmp_path):
    recover_dir(tmp_path / "last")
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_an_earlier_kill_are_cleared_before_the_swap(tmp_path):
    """A `.best.new` (partial write) and a `.best.old` (swap cut short after the new folder landed) from an
    earlier kill must neither block the next commit nor leak into it."""
    final = tmp_path / "best"
    commit_dir(final, _fill("one"))
    for stale in (tmp_path / ".best.new", tmp_path / ".best.old"):
        stale.mkdir()
        (stale / "junk.txt").write_text("junk")
    commit_dir(final, _fill("two"))
    assert _read(final) == ("two", "two") and not (final / "junk.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
