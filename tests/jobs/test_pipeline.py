"""compress pipeline on the embedded digits with tiny settings: every step, resume, --redo, the report."""
import html
import json

import pytest
import yaml
from typer.testing import CliRunner

from compress.cli import app
from compress.jobs.recipe import load_recipe

runner = CliRunner()


def _recipe(tmp_path, **changes):
    r = {"out": str(tmp_path / "run"), "data": {"image_size": 8, "train_ratio": 0.7},
         "train": {"epochs": 1, "batch_size": 256, "device": "cpu"},
         "teacher": {"arch": "cifar_resnet8", "epochs": 1}, "baseline": False,
         "students": [{"name": "kd", "method": "kd", "student": "cifar_resnet8"},
                      {"name": "kd-qad", "quantize": {"from": "kd", "epochs": 1}}],
         "export": {"fp16": True, "int8": True, "int8_flavour": "both", "trt": True, "calib_images": 64},
         "profile": {"host": True, "warmup": 1, "iters": 2, "targets": ["jetson-orin-nano-8gb@15W"]}}
    r.update(changes)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(r))
    return path


def _steps(args):
    res = runner.invoke(app, ["pipeline", *args, "--json"])
    out = json.loads(res.stdout)
    # a finished run whose export failed parity (1-epoch models often do in INT8) exits 1 and says so
    assert res.exit_code == (1 if out.get("failed") else 0), res.output
    assert all(f.startswith("export:") and "parity failed" in f for f in out.get("failed", []))
    return {s["name"]: s["status"] for s in out["steps"]}


def test_pipeline_runs_resumes_and_redoes(tmp_path):
    recipe = _recipe(tmp_path)
    first = _steps([str(recipe)])
    assert list(first) == ["teacher", "student:kd", "student:kd-qad", "export:kd", "export:teacher", "profile",
                           "report"]  # the teacher is exported by default: the reference of every row
    assert set(first.values()) == {"ran"}
    run = tmp_path / "run"
    report = (run / "report.md").read_text()
    rows = [ln for ln in report.splitlines() if ln.startswith("| ") and not ln.startswith(("| model", "| ---"))]
    assert [r.split(" | ")[2].split(" — PARITY FAILED")[0] for r in rows] == [
        "fp32", "fp16", "int8 (cpu)", "int8 (trt)", "int8 (cpu)", "fp32", "fp16", "int8 (cpu)", "int8 (trt)"]  # kd × 4, kd-qad, teacher × 4
    cells = {(r.split(" | ")[0].lstrip("| "), r.split(" | ")[2].split(" — ")[0]): r.split(" | ") for r in rows}
    assert cells["teacher", "fp32"][4] == "+0.00" and cells["teacher", "fp32"][9] == "100%"
    assert " ×1.00" in cells["teacher", "fp32"][11]  # its own estimate against itself
    kd = cells["kd", "fp32"]
    t = cells["teacher", "fp32"]
    assert abs(float(kd[4]) - (float(kd[3]) - float(t[3]))) <= 0.011  # Δ OA in points, student − teacher
    host, t_host = (float(c.split(" ×")[0]) for c in (kd[10], t[10]))
    assert float(kd[10].split(" ×")[1]) == pytest.approx(t_host / host, rel=0.04)  # ×N: N times faster (ms rounded)
    assert kd[9].endswith("%") and "Reference: the teacher's fp32" in report
    assert "## What to ship" in report and "- jetson-orin-nano-8gb@15W: ship " in report and "- host: ship " in report
    fixes = [ln for ln in report.split("## INT8 fixes")[1].splitlines() if ln.startswith("- ")]
    assert [ln.split(":")[0] for ln in fixes] == ["- kd int8 (cpu)", "- kd int8 (trt)", "- kd-qad int8 (cpu)",
                                                 "- teacher int8 (cpu)", "- teacher int8 (trt)"]
    assert all("AdaRound: " in ln and "bias correction: " in ln and "in float" in ln for ln in fixes)
    assert "<h2>INT8 fixes" in (run / "report.html").read_text()
    assert "jetson-orin-nano-8gb@15W ms" in report and "(80 % band" not in report.split("\n")[0]
    assert (run / "pareto_jetson-orin-nano-8gb_15W.png").is_file() and (run / "report.html").is_file()
    card = (run / "exports" / "kd" / "README.md").read_text()
    assert "## Preprocessing" in card and "ESTIMATE" in card and "model_int8.onnx" in card
    assert (run / "exports" / "kd" / "build_engine.sh").is_file()
    assert set(_steps([str(recipe)]).values()) == {"done"}  # everything finished: nothing reruns
    redo = _steps([str(recipe), "--redo", "student:kd"])
    assert redo == {"teacher": "done", "student:kd": "ran", "student:kd-qad": "ran", "export:kd": "ran",
                    "export:teacher": "done", "profile": "ran", "report": "ran"}
    assert set(_steps([str(recipe), "--dry-run"]).values()) == {"done"}


@pytest.mark.parametrize("change,message", [
    ({"students": [{"name": "x", "method": "nope"}]}, "unknown method 'nope'"),
    ({"students": [{"name": "q", "quantize": {"from": "later"}}]}, "not a student listed before it"),
    ({"students": [{"name": "p", "prune": {"macs": 2}}]}, "one share in (0, 1)"),
    ({"profile": {"targets": ["jetson-orin-nano"]}}, "ambiguous"),
    ({"export": {"int8": True, "trt": True, "int8_flavour": "cpu"}}, "trt-flavour file"),
    ({"students": [{"name": "a"}, {"name": "a"}]}, "appear twice"),
    ({"profile": {"targets": ["jetson-orin-nano-8gb@15W"], "budget": {"orin": {"latency_ms": 1}}}},
     "profile.budget: 'orin' is not a device of this recipe"),
    ({"students": [{"name": "o", "search": {"latency_ms": 1}}]}, "students.o.search: give the device as"),
    ({"students": [{"name": "o", "search": {"target": "jetson-nope"}}]}, "students.o.search: Unknown device profile"),
    ({"students": [{"name": "o", "search": {"target": "jetson-orin-nano-8gb", "precision": "fp8"}}]},
     "students.o.search: --precision is"),
    ({"students": [{"name": "o", "search": {"target": "jetson-orin-nano-8gb", "remote": "a b"}}]},
     "students.o.search: --remote 'a b' is not a host"),
    ({"students": [{"name": "o", "prune": {"macs": 0.5}, "search": {"target": "jetson-orin-nano-8gb"}}]},
     "one of prune, quantize and search"),
    ({"students": [{"name": "kd", "method": "kd", "params": {"bogus": 1}}]}, "students.kd.params: Unknown key(s) bogus"),
    ({"students": [{"name": "teacher", "student": "cifar_resnet8"}], "export": {"teacher": True}},
     "student name 'teacher' is the recipe's own"),
    ({"export": {"int8_bias_correction": "sometimes"}}, "export.int8_bias_correction must be auto, on or off, got 'sometimes'"),
])
def test_bad_recipes_fail_before_any_step(tmp_path, change, message):
    res = runner.invoke(app, ["pipeline", str(_recipe(tmp_path, **change))])
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("written,meant", [("on", "on"), (True, "on"), ("off", "off"), (False, "off"), ("auto", "auto")])
def test_bias_correction_in_a_recipe_reads_yaml_booleans_as_on_and_off(tmp_path, written, meant):
    (tmp_path / "r.yaml").write_text(f"export: {{int8_bias_correction: {str(written).lower()}}}\n")
    from compress.jobs.recipe import export_config

    assert export_config(load_recipe(tmp_path / "r.yaml").export).int8_bias_correction == meant


def test_init_writes_a_recipe_that_loads_and_is_not_overwritten(tmp_path):
    path = tmp_path / "new.yaml"
    res = runner.invoke(app, ["pipeline", str(path), "--init"])
    assert res.exit_code == 0 and path.is_file()
    r = load_recipe(path)
    assert [s.name for s in r.students] == ["kd", "kd-qad"] and r.data.data is None
    assert r.students[0].student == "auto" and r.students[0].prune == {"macs": 0.25}  # the teacher pruned leads
    assert r.data.train_ratio == 0.1 and r.train.epochs is None  # a task small enough to show the teacher's value
    again = runner.invoke(app, ["pipeline", str(path), "--init"])
    assert again.exit_code == 1 and "already exists" in again.output
    listing = runner.invoke(app, ["pipeline", str(path), "--dry-run"])
    assert listing.exit_code == 0 and "pending" in listing.stdout and not (tmp_path / "runs").exists()


def test_the_default_student_is_the_teacher_pruned_with_its_own_baseline(tmp_path):
    recipe = _recipe(tmp_path, baseline=True, teacher={"arch": "cifar_resnet20", "epochs": 1},
                     students=[{"name": "kd", "method": "kd"}],
                     export={"fp16": False, "int8": False, "trt": False, "teacher": False},
                     profile={"host": False, "targets": ["jetson-orin-nano-8gb@15W"]})
    steps = _steps([str(recipe)])
    assert list(steps) == ["teacher", "student:kd", "export:kd", "profile", "report"]  # no zoo baseline step
    run = tmp_path / "run"
    out = json.loads((run / ".pipeline" / "student__kd.json").read_text())["outputs"]
    assert out["row"]["role"] == "student (the teacher pruned)" and "pruned in depth" in out["chosen"]
    assert out["baseline_row"]["params_m"] == out["row"]["params_m"] < 0.2722  # same pruned network, smaller
    assert "| baseline:kd | ce (no teacher) |" in (run / "report.md").read_text()


def test_a_student_searched_for_a_device_trains_its_own_baseline(tmp_path):
    recipe = _recipe(tmp_path, baseline=True, teacher={"arch": "cifar_resnet20", "epochs": 1},
                     students=[{"name": "orin", "method": "kd", "search": {"target": "jetson-orin-nano-8gb@15W"}}],
                     export={"fp16": False, "int8": False, "trt": False, "teacher": False},
                     profile={"host": False, "targets": ["jetson-orin-nano-8gb@15W"]})
    steps = _steps([str(recipe)])
    assert list(steps) == ["teacher", "student:orin", "export:orin", "profile", "report"]
    out = json.loads((tmp_path / "run" / ".pipeline" / "student__orin.json").read_text())["outputs"]
    chosen = out["search"]["chosen"]
    assert out["row"]["role"] == f"student (for jetson-orin-nano-8gb@15W: {chosen})"
    assert out["search"]["budget"]["latency_ms"] == round(out["search"]["teacher"]["fp16_ms"] / 2, 4)
    assert out["baseline_row"]["params_m"] == out["row"]["params_m"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## orin: students considered for jetson-orin-nano-8gb@15W: ≤ " in report
    assert f"| {chosen} | " in report and "← chosen |" in report and "| baseline:orin |" in report
    assert out["chosen"] in report and html.escape(out["chosen"]) in (tmp_path / "run" / "report.html").read_text()
