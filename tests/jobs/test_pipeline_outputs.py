"""Pipeline steps hand on typed outputs: records written before the types existed read back into them, the
JSON a record stores is unchanged in its keys, the rows come from the typed outputs, and a step returning
anything else is refused."""
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from compress.jobs import pipeline_outputs as po
from compress.jobs.pipeline_rows import collect_rows

ORIN = "jetson-orin-nano-8gb@15W"
ROW = {"checkpoint": "run/students/kd/student/checkpoints/best", "method": "kd", "test_oa": 0.8, "test_kappa": 0.7,
       "params_m": 0.5, "role": "student"}
# records as the pipeline wrote them before its steps were typed (stop 46)
OLD = {
    "teacher": {"checkpoints": ["t/ckpt"], "weights": [], "split": None,
                "row": {**ROW, "checkpoint": "run/teacher/teacher/checkpoints/best", "method": "ce", "test_oa": 0.9}},
    "student:kd": {"checkpoint": ROW["checkpoint"], "row": ROW, "teacher_row": None, "chosen": "pruned in depth",
                   "baseline_row": {**ROW, "role": "baseline", "test_oa": 0.7}, "search": None},
    "export:kd": {"checkpoint": ROW["checkpoint"], "engine_status": None, "outcome": "parity-failed",
                  "message": "int8 lost", "notes": ["n"], "dir": "run/exports/kd",
                  "files": [{"file": "run/exports/kd/model.onnx", "precision": "fp32", "oa": 0.8, "kappa": 0.7,
                             "macro_f1": 0.6, "parity_failed": None},
                            {"file": "run/exports/kd/model_int8.onnx", "precision": "int8 (cpu)", "oa": 0.75,
                             "kappa": 0.6, "macro_f1": 0.5, "int8_fixes": {"adaround": "23 layers"},
                             "parity_failed": "onnxrt-cpu-int8"}]},
    "profile": {"files": {"run/exports/kd/model.onnx": {"estimates": {ORIN: {"ms": 0.7, "low_ms": 0.6, "high_ms": 0.9,
                                                                           "power_mode": "15W"}},
                                                        "params": 500000, "macs": 2e7, "file_bytes": 2**21,
                                                        "peak_act_bytes": 10, "host_ms": 1.5, "host_p90_ms": 1.7,
                                                        "host": "x86"}}},
    "report": {"markdown": "run/report.md", "html": "run/report.html"},
}
KINDS = {"teacher": "teacher", "student:kd": "student", "export:kd": "export", "profile": "profile", "report": "report"}


def test_records_written_before_the_types_read_back_typed():
    t = po.read_outputs("teacher", OLD["teacher"])
    assert t.checkpoints == ("t/ckpt",) and t.weights == () and t.row["test_oa"] == 0.9
    s = po.read_outputs("student", OLD["student:kd"])
    assert s.method == "kd" and s.baseline_row["test_oa"] == 0.7 and s.files == ()
    e = po.read_outputs("export", OLD["export:kd"])
    fp32, int8 = e.files
    assert (fp32.precision, fp32.flavour, fp32.label) == ("fp32", None, "fp32")
    assert (int8.precision, int8.flavour, int8.label, int8.parity_failed) == ("int8", "cpu", "int8 (cpu)",
                                                                              "onnxrt-cpu-int8")
    assert e.notes == ("n",) and e.outcome == "parity-failed"
    pr = po.read_outputs("profile", OLD["profile"]).files["run/exports/kd/model.onnx"]
    assert pr.estimates[ORIN] == po.DeviceEstimate(0.7, 0.6, 0.9, "15W") and pr.host_ms == 1.5
    assert po.read_outputs("report", OLD["report"]).paths == OLD["report"]
    assert po.read_outputs("teacher", {"checkpoints": ["a"], "added_later": 1}).checkpoints == ("a",)  # unknown key


def test_a_stored_record_keeps_its_keys_and_reads_back_equal():
    for name, kind in KINDS.items():
        typed = po.read_outputs(kind, OLD[name])
        stored = po.outputs_json(typed)
        assert set(OLD[name]) <= set(stored) | {"files"}, name
        assert po.read_outputs(kind, stored) == typed, name
    assert po.outputs_json(po.read_outputs("report", OLD["report"])) == OLD["report"]  # flat, as before


@dataclass
class FakePipeline:
    """A finished run as the report sees it: the recipe's students, targets and records."""

    run: Path = Path("run")
    recipe_path: str = "recipe.yaml"
    progress: None = None
    recipe: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(
        students=[SimpleNamespace(name="kd")], profile=SimpleNamespace(targets=[ORIN], budget=None)))
    steps: list = field(default_factory=lambda: [po.Step(n, k, {}) for n, k in KINDS.items()])
    records: dict = field(default_factory=lambda: {n: {"outputs": o} for n, o in OLD.items()})

    def outputs(self, name):
        return po.read_outputs(KINDS[name], self.records[name]["outputs"])


def test_rows_are_read_from_the_typed_outputs_of_an_old_run():
    rows, targets = collect_rows(FakePipeline())
    assert targets == [ORIN]
    assert [(r["model"], r["precision"]) for r in rows] == [
        ("teacher", "fp32 (checkpoint)"), ("baseline:kd", "fp32 (checkpoint)"), ("kd", "fp32"),
        ("kd", "int8 (cpu) — PARITY FAILED (onnxrt-cpu-int8)")]
    fp32, int8 = rows[2], rows[3]
    assert fp32["params_m"] == 0.5 and fp32["macs"] == 2e7 and fp32["host_ms"] == 1.5 and fp32["method"] == "kd"
    assert fp32["estimates"] == {ORIN: {"ms": 0.7, "low_ms": 0.6, "high_ms": 0.9, "power_mode": "15W"}}
    assert (int8["flavour"], int8["parity_failed"], int8["int8_fixes"]) == ("cpu", "onnxrt-cpu-int8",
                                                                            {"adaround": "23 layers"})
    assert int8["estimates"] == {} and int8["params_m"] is None  # not profiled


def test_a_step_that_returns_an_untyped_dict_is_refused(tmp_path, monkeypatch):
    from compress.jobs import pipeline as pl
    from compress.jobs import pipeline_steps
    from tests.jobs.test_pipeline_state import _recipe

    monkeypatch.setattr(pipeline_steps, "STEP_KINDS", {k: lambda p, s, f, r: {"checkpoint": "x"}
                                                       for k in pipeline_steps.STEP_KINDS})
    with pytest.raises(TypeError, match="step teacher returned dict, not TeacherOutputs"):
        pl.run_pipeline(_recipe(tmp_path))
    assert not (tmp_path / "run" / ".pipeline" / "teacher.json").exists()


def test_a_profile_row_takes_its_counts_from_the_first_profile_that_has_them():
    from compress.jobs.pipeline_steps import _with_counts

    t = SimpleNamespace(analysis={"params": 10, "macs": 20, "peak_activation_bytes": 5}, file_bytes=30)
    r = _with_counts(po.ProfileRow(), t)  # no host run: the device estimate's profile gives the counts
    assert (r.params, r.macs, r.file_bytes, r.peak_act_bytes) == (10, 20, 30, 5)
    host = po.ProfileRow(params=1, macs=2, file_bytes=3, peak_act_bytes=4, host_ms=0.5)
    assert _with_counts(host, t) is host
