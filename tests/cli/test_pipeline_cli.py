"""`compress pipeline` without a recipe (the quick start) and the summary it prints after the steps."""
from typer.testing import CliRunner

from compress.cli import app
from compress.cli.pipeline import summary_table, value_lines
from compress.jobs.recipe import load_recipe

runner = CliRunner()

ROWS = [
    {"model": "teacher", "precision": "fp32 (checkpoint)", "oa": 0.9666, "params_m": 0.2722, "estimates": {}},
    {"model": "baseline:kd", "precision": "fp32 (checkpoint)", "oa": 0.9326, "params_m": 0.0357, "estimates": {}},
    {"model": "baseline:cifar_resnet8", "precision": "fp32 (checkpoint)", "oa": 0.95, "params_m": 0.078,
     "estimates": {}},
    {"model": "kd", "precision": "fp32", "oa": 0.9660, "params_m": 0.0357, "macs": 1.57e6, "file": "m.onnx",
     "file_bytes": 157286, "host_ms": 0.096, "estimates": {"jetson-orin-nano-8gb@15W": {"ms": 0.471}}},
    {"model": "kd", "precision": "int8 (cpu)", "oa": 0.9654, "params_m": 0.0357, "macs": 1.57e6, "file": "q.onnx",
     "file_bytes": 83886, "host_ms": 0.125, "estimates": {}},
]


def test_value_lines_compare_each_student_with_its_own_baseline_and_the_teacher():
    assert value_lines(ROWS) == [
        "kd: 96.60 % (fp32) against 93.26 % for the same network trained without the teacher (+3.34 pt); "
        "the teacher: 96.66 % with 7.6× the parameters."]  # the zoo baseline has no student named after it
    assert value_lines(ROWS[:2]) == []  # no exported student: nothing to say


def test_summary_table_has_a_row_per_file_and_the_first_device_estimate():
    t = summary_table(ROWS, ["jetson-orin-nano-8gb@15W", "jetson-agx-orin-64gb@MAXN"])
    assert [c.header for c in t.columns][-1] == "jetson-orin-nano-8gb@15W ms" and t.row_count == 5
    cells = [list(c.cells) for c in t.columns]
    assert cells[2][3] == "96.60" and cells[4][3] == "1.57" and cells[5][3] == "0.15" and cells[7][3] == "0.471"
    assert cells[7][4] == "–" and cells[4][0] == "–"  # no estimate / no MACs for a checkpoint row


def test_no_recipe_runs_the_quickstart_example_written_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = runner.invoke(app, ["pipeline", "--dry-run"])
    assert first.exit_code == 0, first.output
    assert "runs/quickstart.yaml (written now)" in " ".join(first.output.split()) and "pending" in first.output
    path = tmp_path / "runs" / "quickstart.yaml"
    r = load_recipe(path)
    assert r.out == "runs/quickstart" and r.data.data is None and r.data.train_ratio == 0.1
    path.write_text(path.read_text().replace("train_ratio: 0.1", "train_ratio: 0.2"))  # the user's edit
    again = runner.invoke(app, ["pipeline", "--dry-run"])
    assert again.exit_code == 0 and "edits included" in " ".join(again.output.split())
    assert "train_ratio: 0.2" in path.read_text() and not (tmp_path / "runs" / "quickstart").exists()


def test_init_without_a_file_name_is_one_clear_line():
    res = runner.invoke(app, ["pipeline", "--init"])
    assert res.exit_code == 1 and "compress pipeline --init RECIPE.yaml" in res.output
    assert "Traceback" not in res.output
