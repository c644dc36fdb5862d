"""compress pipeline never loses what is already there: a folder that is not its own is refused, a finished
step survives a failed redo, a step stopped before its run folder existed starts again, two processes on one
run are told apart, recipes cannot expand without end, and every step's settings are checked first."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compress.cli import app
from compress.errors import UserInputError
from compress.jobs import pipeline as pl
from compress.jobs.recipe import ExportRecipe, Recipe, StudentRecipe, export_config
from compress.lock import lock_folder, release_folder
from export.chain import validate_export_config
from tests.cli.test_reliability import tree_hash
from tests.jobs.fake_steps import install_fake_steps
from tests.jobs.test_pipeline import _recipe

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def _one_line(res, code=1) -> str:
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output and res.output.strip().count("\n") == 0, res.output
    return res.output


@pytest.mark.parametrize("dry", [False, True])
def test_a_folder_that_is_not_a_pipeline_run_is_refused_and_left_as_it_was(tmp_path, dry):
    run = tmp_path / "run"
    for f in ("teacher/notes.txt", "exports/kd/keep.txt", "profile/lab.csv", "recipe.yaml", "report.md"):
        (run / f).parent.mkdir(parents=True, exist_ok=True)
        (run / f).write_text(f"the user's {f}")
    before = tree_hash(run)
    res = runner.invoke(app, ["pipeline", str(_recipe(tmp_path)), *(["--dry-run"] if dry else [])])
    assert "holds files and is not a pipeline run" in _one_line(res)
    assert tree_hash(run) == before


def test_an_output_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("x")
    res = runner.invoke(app, ["pipeline", str(_recipe(tmp_path)), "--out", str(tmp_path / "taken")])
    assert "is a file; give the pipeline a folder" in _one_line(res)
    assert (tmp_path / "taken").read_text() == "x"


def test_a_failed_redo_leaves_the_finished_step_and_its_record(tmp_path, monkeypatch):
    calls = []
    install_fake_steps(monkeypatch, calls, with_resume=True)
    recipe = _recipe(tmp_path)
    pl.run_pipeline(recipe)
    done = tmp_path / "run" / "students" / "kd" / "result.txt"
    kept = done.read_text()
    install_fake_steps(monkeypatch, calls, fail=("student:kd",), with_resume=True)
    with pytest.raises(UserInputError, match="student:kd failed"):
        pl.run_pipeline(recipe, redo=("student:kd",))
    assert done.read_text() == kept and not (done.parent / "half.txt").exists()
    assert not list((tmp_path / "run" / ".pipeline").glob("*.old-*"))
    install_fake_steps(monkeypatch, calls, with_resume=True)
    steps = {s.name: s.status for s in pl.run_pipeline(recipe).steps}
    assert steps["student:kd"] == "done"  # its record came back with it


def test_a_step_stopped_before_its_run_folder_existed_starts_again(tmp_path, monkeypatch):
    calls = []
    install_fake_steps(monkeypatch, calls, with_resume=True)
    recipe = _recipe(tmp_path)
    from compress.jobs.recipe import load_recipe

    pipe = pl.Pipeline(load_recipe(recipe), str(recipe))
    state = tmp_path / "run" / pl.STATE_DIR
    state.mkdir(parents=True)
    key = pl.step_key(pipe.steps[0], {})
    (state / "teacher.started").write_text(key)  # Ctrl-C before the teacher's folder held anything
    pl.run_pipeline(recipe)
    assert calls[0] == ("teacher", False)


def test_export_without_int8_passes_the_check_the_run_makes():
    validate_export_config(export_config(ExportRecipe(int8=False)))  # int8_flavour 'both' was refused after training
    with pytest.raises(UserInputError, match="trt-flavour file|TensorRT-flavour file"):
        validate_export_config(export_config(ExportRecipe(int8=True, trt=True, int8_flavour="cpu")))


def test_a_student_given_as_a_checkpoint_gets_no_baseline_step():
    steps = [s.name for s in pl.plan(Recipe(students=(StudentRecipe(name="a", student="runs/x/student"),
                                                      StudentRecipe(name="b", student="cifar_resnet8"))))]
    assert "baseline:cifar_resnet8" in steps and not any("/" in s for s in steps)


@pytest.mark.parametrize("text", [
    'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b]\n',
    "out: runs/x\nstudents:\n  - &s\n    name: kd\n    params: *s\n",
])
def test_yaml_aliases_are_refused_in_one_line(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    res = runner.invoke(app, ["pipeline", str(path), "--dry-run"])
    assert "aliases (*name) are not accepted" in _one_line(res)


def test_a_second_process_on_the_same_pipeline_is_told_who_holds_it(tmp_path):
    recipe = _recipe(tmp_path)
    state = tmp_path / "run" / pl.STATE_DIR
    state.mkdir(parents=True)
    assert lock_folder(state, "pipeline folder")
    try:
        p = subprocess.run([sys.executable, "-m", "compress", "pipeline", str(recipe)], cwd=ROOT,
                           capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    finally:
        release_folder(state)
    assert p.returncode == 1 and "is in use by process" in p.stderr + p.stdout
    assert str(os.getpid()) in p.stderr + p.stdout and "Traceback" not in p.stderr
    assert not (tmp_path / "run" / "teacher").exists()


def test_a_second_process_resuming_a_run_in_use_is_told_who_holds_it(tmp_path):
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--image-size", "8", "--epochs", "1", "--batch-size", "256", "--device", "cpu",
                              "--out", str(run)])
    assert res.exit_code == 0, res.output
    assert lock_folder(run)
    try:
        p = subprocess.run([sys.executable, "-m", "compress", "train", "--out", str(run), "--resume", "--epochs", "2"],
                           cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                           timeout=120)
    finally:
        release_folder(run)
    assert p.returncode == 1 and "is in use by process" in p.stderr + p.stdout, p.stderr
    assert "Traceback" not in p.stderr


def test_a_file_that_failed_parity_is_marked_and_the_pipeline_exits_non_zero(tmp_path, monkeypatch):
    import dataclasses

    import export.chain as ep

    real = ep.check_parity

    def int8_fails(*args, **kwargs):
        report = real(*args, **kwargs)
        rows = [dataclasses.replace(r, passed=False) if r.precision == "int8" else r for r in report.rows]
        return dataclasses.replace(report, rows=rows, passed=all(r.passed for r in rows))

    monkeypatch.setattr(ep, "check_parity", int8_fails)
    recipe = _recipe(tmp_path, students=[{"name": "kd", "method": "kd", "student": "cifar_resnet8"}],
                     export={"fp16": False, "int8": True, "int8_flavour": "cpu", "trt": False, "calib_images": 64},
                     profile={"host": False, "targets": ["jetson-orin-nano-8gb@15W"]})
    res = runner.invoke(app, ["pipeline", str(recipe)])
    assert res.exit_code == 1 and "export:kd: parity failed for onnxrt-cpu-int8" in res.output, res.output
    report = (tmp_path / "run" / "report.md").read_text()
    int8_rows = [ln for ln in report.splitlines() if "int8" in ln and ln.startswith("| kd")]
    assert int8_rows and all("PARITY FAILED" in ln for ln in int8_rows)
    assert not any("PARITY FAILED" in ln for ln in report.splitlines() if "| fp32 |" in ln)
    assert "FAILED their parity check" in report
    card = (tmp_path / "run" / "exports" / "kd" / "README.md").read_text()
    assert "PARITY FAILED" in card
