"""A device calibrated from the user's own measurements: the correction fitted, stored, used only for that
device, precision and architecture, its file validated line by line."""
import json
import math

import pytest
from typer.testing import CliRunner

from compress.cli import app
from compress.errors import UserInputError
from profiles.api import ProfileConfig, profile_models
from profiles.calibration.correction import (ONE_POINT_BAND, MEASUREMENT_COLUMNS, calibrate_device, fit_scales,
                                         load_store, stored_correction)

runner = CliRunner()
DEVICE = "jetson-orin-nano-8gb"
HEADER = ",".join(MEASUREMENT_COLUMNS)


def _plain(model="cifar_resnet20", size=32, precision="fp16", device=DEVICE, store=None):
    cfg = ProfileConfig(target=device, image_size=size, precision=precision, in_chans=3, calibration=store)
    return profile_models([model], cfg).models[0].latency[0]


def _csv(tmp_path, *rows, name="m.csv"):
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_one_measurement_scales_later_estimates_of_that_architecture_on_that_device_only(tmp_path):
    store = tmp_path / "cal.json"
    plain = _plain(store=store)["latency_ms"]
    csv = _csv(tmp_path, f"cifar_resnet20,32,fp16,1,15W,8.6.2,{2 * plain:.6f},gpu_compute")
    corr, where = calibrate_device(csv, DEVICE, store)
    assert where == store and corr.scales == {"fp16": {"cifar-resnet20": pytest.approx(2.0, rel=1e-4)}}
    assert corr.points == {"fp16": {"cifar-resnet20": 1}} and corr.band["fp16"]["cifar-resnet20"] == ONE_POINT_BAND
    e = _plain(store=store)
    assert e["latency_ms"] == pytest.approx(2 * plain, rel=1e-4) and e["kind"] == "estimate"
    assert e["label"] == "ESTIMATE (calibrated on 1 measurement of cifar-resnet20 on this device)"
    assert (e["low_ms"], e["high_ms"]) == pytest.approx((e["latency_ms"] * 0.834, e["latency_ms"] * 1.199), rel=1e-6)
    assert _plain(size=64, store=store)["latency_ms"] == pytest.approx(2 * _plain(size=64)["latency_ms"], rel=1e-4)
    other = _plain("cifar_resnet8", store=store)  # another architecture: not corrected, and says why
    assert other["latency_ms"] == _plain("cifar_resnet8")["latency_ms"] and "label" not in other
    assert any("include no cifar-resnet8 in fp16" in a for a in other["assumptions"])
    assert _plain(precision="int8", store=store)["latency_ms"] == _plain(precision="int8")["latency_ms"]
    assert _plain(device="jetson-agx-orin-64gb", store=store)["latency_ms"] == _plain(device="jetson-agx-orin-64gb")["latency_ms"]


def test_five_measurements_give_a_geometric_mean_per_architecture_and_a_band_from_their_residuals(tmp_path):
    store = tmp_path / "cal.json"
    p20, p8 = _plain(store=store)["latency_ms"], _plain("cifar_resnet8", store=store)["latency_ms"]
    rows = [f"cifar_resnet20,32,fp16,1,,,{k * p20:.6f},gpu_compute" for k in (1.0, 1.5, 2.0, 3.0)]
    csv = _csv(tmp_path, *rows, f"cifar-resnet8,32,fp16,1,,,{0.5 * p8:.6f},gpu_compute")
    corr, _ = calibrate_device(csv, DEVICE, store)
    k = math.exp(sum(map(math.log, (1.0, 1.5, 2.0, 3.0))) / 4)  # 1.732…
    assert corr.scales["fp16"] == {"cifar-resnet20": pytest.approx(k, rel=1e-4), "cifar-resnet8": pytest.approx(0.5, rel=1e-4)}
    assert corr.points["fp16"] == {"cifar-resnet20": 4, "cifar-resnet8": 1}
    assert corr.band["fp16"]["cifar-resnet20"] == pytest.approx((1.0 / k, 3.0 / k), abs=1e-4)  # wider than one point's
    assert [r["ratio"] for r in corr.rows] == pytest.approx([1.0, 1.5, 2.0, 3.0, 0.5], abs=1e-3)
    assert _plain("cifar_resnet8", store=store)["latency_ms"] == pytest.approx(0.5 * p8, rel=1e-4)
    calibrate_device(_csv(tmp_path, rows[0], name="again.csv"), DEVICE, store)  # a new calibration replaces the old
    assert stored_correction(DEVICE, store).scales["fp16"] == {"cifar-resnet20": pytest.approx(1.0, rel=1e-4)}
    assert fit_scales([("fp16", 4.0, 1.0), ("fp16", 1.0, 1.0), ("int8", 3.0, 2.0)]) == ({"fp16": 2.0, "int8": 1.5},
                                                                                        {"fp16": 2, "int8": 1})


def test_a_host_timed_measurement_is_compared_with_the_estimate_plus_the_host_overhead(tmp_path):
    store = tmp_path / "cal.json"
    plain = _plain(store=store)["latency_ms"]
    csv = _csv(tmp_path, f"cifar_resnet20,32,fp16,1,,,{plain:.6f},host_sync")
    corr, _ = calibrate_device(csv, DEVICE, store)
    assert corr.rows[0]["estimated_ms"] > plain and corr.scales["fp16"]["cifar-resnet20"] < 1.0


@pytest.mark.parametrize("text, match", [
    ("model,input_size,measured_ms\nx,1,2\n", "missing column.*precision, batch, power_mode, tensorrt, timed"),
    (HEADER + "\n", "no measurements below the header"),
    (HEADER + "\ncifar_resnet20,32,fp16,1,,,0,gpu_compute\n", "line 2: measured_ms must be a positive time"),
    (HEADER + "\ncifar_resnet20,32,fp16,1,,,-1.5,gpu_compute\n", "line 2: measured_ms must be a positive time"),
    (HEADER + "\ncifar_resnet20,32,fp16,1,,,abc,gpu_compute\n", "line 2: .*measured_ms a number"),
    (HEADER + "\ncifar_resnet20,32,bf16,1,,,1,gpu_compute\n", "line 2: precision 'bf16' is not one of fp32, fp16, int8"),
    (HEADER + "\ncifar_resnet20,32,fp16,1,,,1,wall\n", "line 2: timed 'wall' is not one of gpu_compute"),
    (HEADER + "\ncifar_resnet20,32,fp16,1,,,1,gpu_compute\nnot_a_model_xyz,32,fp16,1,,,1,gpu_compute\n",
     "line 3: Unknown model 'not_a_model_xyz'"),
    (HEADER + "\ncifar_resnet20,32,fp16,1,99W,,1,gpu_compute\n", "line 2: .*no power mode '99W'"),
])
def test_a_bad_measurements_file_is_one_line_and_stores_nothing(tmp_path, text, match):
    bad, store = tmp_path / "bad.csv", tmp_path / "cal.json"
    bad.write_text(text)
    with pytest.raises(UserInputError, match=match):
        calibrate_device(bad, DEVICE, store)
    assert not store.exists()


def test_the_cli_calibrates_then_labels_later_estimates(tmp_path):
    store = tmp_path / "cal.json"
    plain = _plain(store=store)["latency_ms"]
    csv = _csv(tmp_path, f"cifar_resnet20,32,fp16,1,,,{3 * plain:.6f},gpu_compute")
    r = runner.invoke(app, ["profile", "--calibrate", str(csv), "--target", DEVICE, "--calibration", str(store)],
                      terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "calibration of jetson-orin-nano-8gb" in r.output and "× 3.000" in r.output
    assert load_store(store)[DEVICE].scales["fp16"]["cifar-resnet20"] == pytest.approx(3.0, rel=1e-4)
    r = runner.invoke(app, ["profile", "cifar_resnet20", "--image-size", "32", "--in-chans", "3", "--precision", "fp16",
                            "--target", DEVICE, "--calibration", str(store), "--json"])
    est = json.loads(r.stdout)["models"][0]["latency"][0]
    assert est["latency_ms"] == pytest.approx(3 * plain, rel=1e-4) and "calibrated on 1 measurement" in est["label"]
    r = runner.invoke(app, ["profile", "--calibrate", str(csv), "--calibration", str(store)])
    assert r.exit_code == 1 and "add --target NAME" in r.output and r.exception is None or isinstance(r.exception, SystemExit)
    r = runner.invoke(app, ["profile", "--calibrate", str(tmp_path / "none.csv"), "--target", DEVICE])
    assert r.exit_code == 1 and "does not exist" in r.output


def test_an_unreadable_store_is_one_line(tmp_path):
    store = tmp_path / "cal.json"
    store.write_text("{not json")
    with pytest.raises(UserInputError, match="calibration store .* is not readable"):
        _plain(store=store)


def test_the_student_search_budget_uses_the_stored_calibration_of_the_teachers_architecture(tmp_path, monkeypatch):
    from compress.jobs.default_student import StudentBudget
    from compress.models import create_model

    store = tmp_path / "cal.json"
    monkeypatch.setenv("COMPRESS_CALIBRATION", str(store))
    model, shape = create_model("cifar_resnet20", 10, 3).eval(), (1, 3, 32, 32)
    before = StudentBudget(target=DEVICE).device_budget(model, shape, architecture="cifar_resnet20").latency_ms
    plain = _plain(store=store)["latency_ms"]
    calibrate_device(_csv(tmp_path, f"cifar_resnet20,32,fp16,1,,,{2 * plain:.6f},gpu_compute"), DEVICE, store)
    after = StudentBudget(target=DEVICE).device_budget(model, shape, architecture="cifar_resnet20").latency_ms
    assert after == pytest.approx(2 * before, rel=1e-3)
    assert StudentBudget(target=DEVICE).device_budget(model, shape, architecture="cifar_resnet8").latency_ms == before


def test_a_remote_measurement_can_be_added_to_the_device_calibration(tmp_path, monkeypatch):
    import functools

    from compress.models import create_model
    from compress.jobs.device_measure import timing_onnx
    from runtime import remote as R
    from tests.fake_jetson import FakeJetson

    fake = FakeJetson(per_node=0.05)
    monkeypatch.setattr(R, "profile_remote", functools.partial(R.profile_remote, run=fake))
    onnx_file, store = tmp_path / "student.onnx", tmp_path / "cal.json"
    timing_onnx(create_model("cifar_resnet20", 10, 3).eval(), (1, 3, 32, 32), onnx_file)
    args = ["profile", str(onnx_file), "--precision", "fp16", "--target", DEVICE, "--remote", "nvidia@orin",
            "--calibration", str(store)]
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    assert not store.exists()  # measuring alone changes no calibration
    plain = json.loads(r.stdout)["models"][0]["latency"][0]["latency_ms"]
    r = runner.invoke(app, [*args, "--save-calibration"], terminal_width=200)
    assert r.exit_code == 0, r.output
    arch = "student"  # a file without the architecture tag is keyed by its name
    assert f"calibration of {DEVICE} updated in {store}: {arch} fp16" in r.output.replace("\n", "")
    corr = load_store(store)[DEVICE]
    assert corr.scales["fp16"][arch] == pytest.approx(fake.timed[-1] / plain, rel=1e-3)
    r = runner.invoke(app, [*args, "--save-calibration"])  # the same setup again replaces, not adds
    assert load_store(store)[DEVICE].points["fp16"][arch] == 1
    r = runner.invoke(app, ["profile", str(onnx_file), "--remote", "nvidia@orin", "--save-calibration"])
    assert r.exit_code == 1 and "give both --remote user@jetson and --target NAME" in r.output


def test_the_search_table_says_its_estimates_are_calibrated():
    from compress.jobs.student_search import search_table

    search = {"budget": {"target": DEVICE, "latency_ms": 0.5, "precision": "fp16", "architecture": "cifar-resnet20"},
              "proxy": {"method": "kd", "epochs": 3, "share": 0.5}, "chosen": "depth", "candidates": [],
              "teacher": {"macs": 1e6, "params": 1e5, "fp16_ms": 1.0, "fp16_correction": 2.0, "image_size": 32}}
    title, rows = search_table(search)
    assert "(ESTIMATES × 2.000, this device's calibration of cifar-resnet20, batch 1)" in title and rows[0][0] == "teacher"
