"""A pipeline step's key follows its own settings and what it reads; an interrupted step resumes."""
import copy

import pytest
import yaml

from compress.errors import UserInputError
from compress.jobs.pipeline import Pipeline, plan, step_key
from compress.jobs.recipe import load_recipe
from tests.engine.resume_helpers import EpochRecorder

BASE = {"data": {"image_size": 8, "train_ratio": 0.7},
        "train": {"epochs": 1, "batch_size": 256, "device": "cpu"},
        "teacher": {"arch": "cifar_resnet8", "epochs": 1}, "baseline": False,
        "students": [{"name": "kd", "method": "kd", "student": "cifar_resnet8"},
                     {"name": "dkd", "method": "dkd", "student": "cifar_resnet8"}],
        "export": {"int8": False, "teacher": False}, "profile": {"host": False, "targets": ["jetson-orin-nano-8gb@15W"]}}


def _keys(tmp_path, change=None, records=None):
    r = copy.deepcopy(BASE)
    r["out"] = str(tmp_path / "run")
    if change:
        change(r)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(r))
    return {s.name: step_key(s, records or {}) for s in plan(load_recipe(path))}


def _set(path, value):
    def change(r):
        d = r
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return change


@pytest.mark.parametrize("change, moved", [
    (_set(["students", 0, "params"], {"temperature": 2.0}), {"student:kd"}),  # its export follows through the new run id
    (_set(["students", 1, "student"], "cifar_resnet14"), {"student:dkd"}),
    (_set(["teacher", "epochs"], 2), {"teacher"}),
    (_set(["train", "lr"], 0.01), {"teacher", "student:kd", "student:dkd"}),
    (_set(["data", "image_size"], 16), {"teacher", "student:kd", "student:dkd"}),
    (_set(["export", "calib_images"], 64), {"export:kd", "export:dkd"}),
    (_set(["profile", "iters"], 7), {"profile"}),
    (_set(["profile", "budget"], {"latency_ms": 1.0}), {"report"}),  # a budget changes the pick, not the numbers
    (_set(["students", 0, "search"], {"target": "jetson-orin-nano-8gb"}), {"student:kd"}),
])
def test_a_setting_moves_the_keys_of_the_steps_it_belongs_to(tmp_path, change, moved):
    before, after = _keys(tmp_path), _keys(tmp_path, change)
    assert list(before) == ["teacher", "student:kd", "student:dkd", "export:kd", "export:dkd", "profile", "report"]
    assert {n for n in before if before[n] != after[n]} == moved


def test_without_a_budget_the_profile_and_report_steps_keep_the_settings_they_had_before_budgets(tmp_path):
    r = copy.deepcopy(BASE)
    r["out"] = str(tmp_path / "run")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(r))
    steps = {s.name: s for s in plan(load_recipe(tmp_path / "r.yaml"))}
    assert "budget" not in steps["profile"].settings["profile"] and steps["report"].settings == {}


def test_a_student_without_a_search_keeps_the_settings_and_key_it_had_before_search_existed(tmp_path):
    r = copy.deepcopy(BASE)
    r["out"] = str(tmp_path / "run")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(r))
    kd = next(s for s in plan(load_recipe(tmp_path / "r.yaml")) if s.name == "student:kd")
    assert set(kd.settings["student"]) == {"name", "method", "student", "weights", "params", "prune", "quantize"}


def test_int8_flavour_keeps_the_export_key_it_had_as_int8_target_and_the_old_recipe_key_still_reads(tmp_path):
    old = _keys(tmp_path, _set(["export", "int8_target"], "cpu"))  # a recipe written before the rename
    new = _keys(tmp_path, _set(["export", "int8_flavour"], "cpu"))
    assert old == new and new != _keys(tmp_path)
    r = copy.deepcopy(BASE)
    r["out"] = str(tmp_path / "run")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(r))
    export = next(s for s in plan(load_recipe(tmp_path / "r.yaml")) if s.name == "export:kd")
    assert "int8_target" in export.settings["export"] and "int8_flavour" not in export.settings["export"]
    with pytest.raises(UserInputError, match="'int8_target' is the old name of 'int8_flavour'; give 'int8_flavour' only"):
        _keys(tmp_path, lambda r: r["export"].update(int8_target="cpu", int8_flavour="trt"))


def test_a_new_run_of_a_step_moves_the_keys_of_the_steps_that_read_it(tmp_path):
    first = _keys(tmp_path, records={"teacher": {"run_id": "a"}, "student:kd": {"run_id": "b"}})
    again = _keys(tmp_path, records={"teacher": {"run_id": "a"}, "student:kd": {"run_id": "c"}})
    assert {n for n in first if first[n] != again[n]} == {"export:kd", "report"}  # profile: via export:kd
    assert all(len(k) == 16 and int(k, 16) >= 0 for k in first.values())


class _StopAt(EpochRecorder):
    """Records training epochs; raises KeyboardInterrupt (a Ctrl-C) when ``stop`` starts."""

    def __init__(self, stop=None):
        super().__init__()
        self.stop_at = stop

    def start(self, description, total):
        if description == self.stop_at:
            raise KeyboardInterrupt
        super().start(description, total)


def test_an_interrupted_student_resumes_from_its_last_epoch(tmp_path):
    r = copy.deepcopy(BASE)
    r.update(out=str(tmp_path / "run"), students=[{"name": "kd", "method": "kd", "student": "cifar_resnet8"}])
    r["train"]["epochs"] = 2  # the teacher keeps its own 1
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(r))
    first = _StopAt("student epoch 2/2")
    with pytest.raises(KeyboardInterrupt):
        Pipeline(load_recipe(path), str(path), progress=first).run_all()
    assert first.epochs == ["model epoch 1/1", "student epoch 1/2"]  # the teacher, then the student's first epoch
    assert (tmp_path / "run" / "students" / "kd" / "student" / "checkpoints" / "last").is_dir()
    again = _StopAt()
    result = Pipeline(load_recipe(path), str(path), progress=again).run_all()
    assert again.epochs == ["student epoch 2/2"]  # teacher done, the student continues: one epoch, not two
    status = {s.name: s.status for s in result.steps}
    assert status["teacher"] == "done" and status["student:kd"] == "ran"
    history = (tmp_path / "run" / "students" / "kd" / "student" / "history.csv").read_text().splitlines()
    assert [ln.split(",")[0] for ln in history[1:]] == ["1", "2"]
