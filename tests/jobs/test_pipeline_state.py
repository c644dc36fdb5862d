"""The pipeline's step state with fake steps (no training): what a dry run reports before and after a run
and after a change, the recipe copy, the temporaries a run leaves (none), a failed step's record, timing."""
import shutil

import pytest
import yaml

from compress.errors import UserInputError
from compress.jobs import pipeline as pl
from compress.jobs.recipe import load_recipe
from tests.jobs.fake_steps import fake_outputs, install_fake_steps
from tests.jobs.test_pipeline_keys import BASE

NAMES = ["teacher", "student:kd", "student:dkd", "export:kd", "export:dkd", "profile", "report"]


def _recipe(tmp_path, **change):
    r = {**yaml.safe_load(yaml.safe_dump(BASE)), "out": str(tmp_path / "run"), **change}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(r))
    return path


def _status(path, redo=()):
    return {s.name: s.status for s in pl.Pipeline(load_recipe(path), str(path)).status(redo)}


def _state_files(tmp_path):
    return sorted(p.name for p in (tmp_path / "run" / ".pipeline").iterdir())


def test_dry_run_before_after_and_after_a_change(tmp_path, monkeypatch):
    calls = []
    install_fake_steps(monkeypatch, calls)
    path = _recipe(tmp_path)
    assert _status(path) == dict.fromkeys(NAMES, "pending")
    res = pl.run_pipeline(path)
    assert calls == NAMES and [s.status for s in res.steps] == ["ran"] * 7
    assert all(0 <= s.seconds < 60 for s in res.steps)
    assert _status(path) == dict.fromkeys(NAMES, "done")
    assert _status(path, redo=("student:dkd",)) == {**dict.fromkeys(NAMES, "done"), "student:dkd": "redo",
                                                   "export:dkd": "redo", "profile": "redo", "report": "redo"}
    changed = _recipe(tmp_path, students=[{"name": "kd", "method": "kd", "student": "cifar_resnet8",
                                           "params": {"temperature": 2.0}}, BASE["students"][1]])
    assert _status(changed) == {**dict.fromkeys(NAMES, "done"), "student:kd": "redo", "export:kd": "redo",
                                "profile": "redo", "report": "redo"}
    (tmp_path / "run" / ".pipeline" / "student__kd.json").unlink()  # a record lost: the step never finished
    assert _status(path) == {**dict.fromkeys(NAMES, "done"), "student:kd": "pending", "export:kd": "redo",
                             "profile": "redo", "report": "redo"}


def test_the_recipe_is_copied_into_the_run_and_a_run_from_that_copy_works(tmp_path, monkeypatch):
    calls = []
    install_fake_steps(monkeypatch, calls)
    path = _recipe(tmp_path)
    pl.run_pipeline(path)
    copy = tmp_path / "run" / "recipe.yaml"
    assert copy.read_text() == path.read_text()
    res = pl.run_pipeline(copy, redo=("report",))  # the same file: nothing to copy, no error
    assert [s.status for s in res.steps][-1] == "ran" and copy.read_text() == path.read_text()


def test_a_run_leaves_no_temporaries_and_a_redo_replaces_the_folder(tmp_path, monkeypatch):
    calls = []
    install_fake_steps(monkeypatch, calls)
    path = _recipe(tmp_path)
    pl.run_pipeline(path)
    records = [f"{n.replace(':', '__')}.json" for n in NAMES]
    assert _state_files(tmp_path) == sorted([*records, ".lock"])  # the lock file stays, released
    pl.run_pipeline(path, redo=("student:kd",))
    assert calls[7:] == ["student:kd", "export:kd", "profile", "report"]
    assert (tmp_path / "run" / "students" / "kd" / "result.txt").read_text() == "student:kd 8"
    assert not [f for f in _state_files(tmp_path) if f.endswith(".started") or ".old-" in f]


@pytest.mark.parametrize("make_folder", [True, False])
def test_a_failed_redo_brings_the_old_folder_record_and_state_back(tmp_path, monkeypatch, make_folder):
    calls = []
    install_fake_steps(monkeypatch, calls)
    path = _recipe(tmp_path)
    pl.run_pipeline(path)
    result = tmp_path / "run" / "students" / "kd" / "result.txt"
    kept, before = result.read_text(), _state_files(tmp_path)
    install_fake_steps(monkeypatch, calls, fail=("student:kd",), make_folder=make_folder)
    with pytest.raises(UserInputError, match="student:kd failed"):
        pl.run_pipeline(path, redo=("student:kd",))
    assert result.read_text() == kept and not (result.parent / "half.txt").exists()
    assert _state_files(tmp_path) == before and _status(path) == dict.fromkeys(NAMES, "done")


def test_a_failed_step_without_a_folder_of_its_own_loses_its_record(tmp_path, monkeypatch):
    """The report writes into the run folder itself: nothing can be set aside, so after a failed redo its
    half-written files must not count as done."""
    calls = []
    install_fake_steps(monkeypatch, calls)
    path = _recipe(tmp_path)
    pl.run_pipeline(path)
    install_fake_steps(monkeypatch, calls, fail=("report",), make_folder=False)
    with pytest.raises(UserInputError, match="report failed"):
        pl.run_pipeline(path, redo=("report",))
    assert _status(path) == {**dict.fromkeys(NAMES, "done"), "report": "pending"}


def test_the_key_does_not_depend_on_the_order_settings_were_written_in():
    a = pl.Step("x", "student", {"a": 1, "b": {"c": 2, "d": 3}}, ("teacher",))
    b = pl.Step("x", "student", {"b": {"d": 3, "c": 2}, "a": 1}, ("teacher",))
    records = {"teacher": {"run_id": "r1"}}
    assert pl.step_key(a, records) == pl.step_key(b, records) != pl.step_key(a, {"teacher": {"run_id": "r2"}})


def test_an_interrupted_step_is_resumed_only_with_its_own_key(tmp_path, monkeypatch):
    seen = []
    from compress.jobs import pipeline_steps

    def step(p, s, folder, resume):
        seen.append((s.name, resume))
        if s.folder not in ("", "."):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "config.json").write_text("{}")
        return fake_outputs(s, folder)

    monkeypatch.setattr(pipeline_steps, "STEP_KINDS", {k: step for k in pipeline_steps.STEP_KINDS})
    path = _recipe(tmp_path)
    pl.run_pipeline(path)
    state = tmp_path / "run" / ".pipeline"
    key = (state / "student__kd.json").read_text().split('"key": "')[1][:16]
    (state / "student__kd.json").unlink()
    (state / "student__kd.started").write_text(key)  # killed while training, its folder half-way
    seen.clear()
    pl.run_pipeline(path)
    assert seen[0] == ("student:kd", True)
    (state / "student__kd.json").unlink()
    (state / "student__kd.started").write_text("0" * 16)  # started under other settings: starts again
    seen.clear()
    pl.run_pipeline(path)
    assert seen[0] == ("student:kd", False)
    shutil.rmtree(tmp_path / "run" / "students" / "kd")
    (state / "student__kd.json").unlink()
    (state / "student__kd.started").write_text(key)  # stopped before its folder held a config
    seen.clear()
    pl.run_pipeline(path)
    assert seen[0] == ("student:kd", False)


def test_only_exports_that_failed_parity_are_listed_and_times_are_in_tenths(tmp_path, monkeypatch):
    import time
    from types import SimpleNamespace

    from compress.jobs import pipeline_steps

    def step(p, s, folder, resume):
        if s.folder not in ("", "."):
            folder.mkdir(parents=True, exist_ok=True)
        if s.name == "export:kd":
            return fake_outputs(s, folder, outcome="parity-failed", message="int8 lost 2.5 pt")
        return fake_outputs(s, folder)

    ticks = iter(range(1000))
    monkeypatch.setattr(pipeline_steps, "STEP_KINDS", {k: step for k in pipeline_steps.STEP_KINDS})
    monkeypatch.setattr(pl, "time", SimpleNamespace(perf_counter=lambda: next(ticks) * 0.123456,
                                                     strftime=time.strftime))
    res = pl.run_pipeline(_recipe(tmp_path))
    assert res.failed == ["export:kd: int8 lost 2.5 pt"]
    assert [s.seconds for s in res.steps] == [0.1] * 7
