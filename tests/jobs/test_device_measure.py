"""The student search measured on the user's Jetson (``--remote``): a fake device over a fake SSH whose GPU
time is set by the number of kernels (ONNX nodes) of the file copied to it, as a Jetson's is at small inputs."""
import json
import subprocess

import onnx
import pytest
from typer.testing import CliRunner

from compress.cli import app
from compress.errors import UserInputError
from compress.jobs.candidates import Candidate, DeviceBudget, Estimator
from compress.jobs.default_student import StudentBudget
from compress.jobs.device_measure import DeviceMeter, correction, mode_note, timing_onnx
from compress.jobs.student_search import measure_candidates
from compress.models import create_model
from tests.fake_jetson import FakeJetson

runner = CliRunner()
DEVICE = "jetson-orin-nano-8gb"
FAST = ["--image-size", "16", "--batch-size", "256", "--epochs", "1"]
SHAPE = (1, 1, 16, 16)


@pytest.fixture
def jetson(monkeypatch):
    fake = FakeJetson()
    monkeypatch.setattr(subprocess, "run", fake)
    return fake


def test_a_model_is_measured_as_trtexec_gpu_compute_median_of_its_own_onnx(tmp_path, jetson):
    model = create_model("cifar_resnet8", 10, 1).eval()
    nodes = len(onnx.load_from_string(timing_onnx(model, SHAPE)).graph.node)
    m = DeviceMeter("nvidia@orin", "fp16", tmp_path)(model, SHAPE, "depth+width")
    assert m.ms == round(0.01 * nodes, 4) and m.power_mode == "15W" and "GPU compute" in m.what
    g = onnx.load(tmp_path / "depth_width.onnx").graph
    assert g.input[0].name == "input" and [d.dim_value for d in g.input[0].type.tensor_type.shape.dim] == [1, 1, 16, 16]


def test_the_correction_is_measured_over_estimated_for_the_teacher_and_only_for_its_precision():
    model = create_model("cifar_resnet20", 10, 1).eval()
    plain = Estimator(DEVICE, None)(model, SHAPE)
    budget = DeviceBudget(DEVICE, 0.1, None, "fp16", "orin", teacher_ms=3 * plain["fp16_ms"])
    e = Estimator.for_budget(budget, model, SHAPE)(model, SHAPE)
    assert e["fp16_ms"] == pytest.approx(3 * plain["fp16_ms"], abs=1e-3) and e["fp16_correction"] == pytest.approx(3)
    assert e["fp16_band"] == pytest.approx([3 * x for x in plain["fp16_band"]], abs=1e-3)
    assert e["int8_ms"] == plain["int8_ms"] and "int8_correction" not in e
    assert Estimator.for_budget(DeviceBudget(DEVICE, 0.1), model, SHAPE)(model, SHAPE) == plain
    with pytest.raises(UserInputError, match="a latency must be positive"):
        correction(0.0, 1.0)
    assert mode_note("MODE_15W", "15W") == "" and mode_note(None, "7W") == ""
    assert mode_note("MAXN", "15W") == "the device ran in power mode MAXN, the target names 15W"


def test_a_candidate_estimated_within_but_measured_over_the_budget_no_longer_meets_it(tmp_path, jetson):
    small, big = create_model("cifar_resnet8", 10, 1).eval(), create_model("cifar_resnet20", 10, 1).eval()
    n_small = len(onnx.load_from_string(timing_onnx(small, SHAPE)).graph.node)
    budget = DeviceBudget(DEVICE, round(0.01 * n_small, 4) + 0.005, None, "fp16", "nvidia@orin", 1.0)
    cands = [Candidate("width", "w", 16, {"fp16_ms": 0.1}, True), Candidate("depth", "d", 16, {"fp16_ms": 0.2}, True),
             Candidate("resolution", "r", 12, {"fp16_ms": 9.0}, False, note="9 ms at best")]
    built = [(cands[0], big), (cands[1], small), (cands[2], None)]
    measure_candidates(built, budget, SHAPE, tmp_path)
    width, depth, res = cands
    assert not width.reached and width.note.startswith(f"measured {width.estimate['measured_ms']:g} ms on nvidia@orin "
                                                       "(estimated 0.1)")
    assert depth.reached and depth.latency("fp16") == round(0.01 * n_small, 4) and depth.latency("int8") == float("inf")
    assert "measured_ms" not in res.estimate and len(jetson.timed) == 2  # a candidate out of reach is not measured
    with pytest.raises(UserInputError, match=r"no student made from the teacher meets 0\.01 ms \(fp16, measured on "
                                             r"nvidia@orin for jetson-orin-nano-8gb\); the fastest is"):
        measure_candidates([(Candidate("depth", "d", 16, {"fp16_ms": 0.005}, True), small)],
                           DeviceBudget(DEVICE, 0.01, None, "fp16", "nvidia@orin", 1.0), SHAPE, tmp_path)


def test_without_a_latency_the_budget_is_half_the_teacher_measured_on_the_device(tmp_path, jetson):
    model = create_model("cifar_resnet20", 10, 1).eval()
    b = StudentBudget(target=f"{DEVICE}@15W", remote="nvidia@orin:2222").device_budget(model, SHAPE, tmp_path)
    assert b.teacher_ms == jetson.timed[0] and b.latency_ms == round(jetson.timed[0] / 2, 4) and b.remote == "nvidia@orin:2222"
    assert (tmp_path / "teacher.onnx").is_file()
    with pytest.raises(UserInputError, match="--remote measures .* add --target"):
        StudentBudget(remote="nvidia@orin")
    with pytest.raises(UserInputError, match="is not a host"):
        StudentBudget(target=DEVICE, remote="-oProxyCommand=evil")


def test_distill_for_a_reachable_device_measures_the_teacher_first_and_chooses_by_measurement(tmp_path, jetson):
    teacher = tmp_path / "t"
    r = runner.invoke(app, ["train", "--model", "cifar_resnet20", *FAST, "--out", str(teacher), "--json"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "s"
    r = runner.invoke(app, ["distill", "--teacher", str(teacher), *FAST, "--target", DEVICE, "--remote", "nvidia@orin",
                            "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)["search"]
    t_ms = s["teacher"]["measured_ms"]
    assert s["budget"]["latency_ms"] == round(t_ms / 2, 4) and s["budget"]["teacher_ms"] == t_ms == jetson.timed[0]
    by = {c["name"]: c for c in s["candidates"]}
    chosen = by[s["chosen"]]
    assert chosen["reached"] and chosen["estimate"]["measured_ms"] <= t_ms / 2
    for c in by.values():  # within the budget means measured within it; the rest say why
        assert not c["reached"] or c["estimate"]["measured_ms"] <= s["budget"]["latency_ms"]
    assert by["width"]["reached"] is False  # channels pruned leave the kernel count, so the device time, as it was
    assert "measured on nvidia@orin" in json.loads(r.stdout)["chosen"]


def test_an_unreachable_device_is_one_line_before_the_teacher_trains(tmp_path, monkeypatch):
    def down(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 255, "", "ssh: connect to host orin port 22: No route to host")

    monkeypatch.setattr(subprocess, "run", down)
    r = runner.invoke(app, ["distill", "--teacher-arch", "cifar_resnet20", *FAST, "--target", DEVICE, "--remote", "orin",
                            "--out", str(tmp_path / "d")])
    assert r.exit_code == 1 and "cannot reach orin over SSH (ssh: connect to host orin port 22: No route to host)" in r.output
    assert not (tmp_path / "d").exists()  # a new run folder that trained nothing is not left behind
