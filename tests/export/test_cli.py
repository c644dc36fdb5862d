"""``compress export`` end to end through typer's CliRunner on the digits checkpoint."""
from __future__ import annotations

import json

import onnx
import pytest
import typer
from typer.testing import CliRunner

from compress.cli.export import register


@pytest.fixture(scope="module")
def app():
    a = typer.Typer()
    register(a)

    @a.command("noop")
    def _noop() -> None:  # a second command keeps typer in sub-command mode
        pass

    return a


def _run(app, *args):
    return CliRunner().invoke(app, ["export", *map(str, args)])


def test_full_export_trt_without_tensorrt(app, digits_ckpt, tmp_path):
    out = tmp_path / "exp"
    res = _run(app, digits_ckpt, "-o", out, "--batch", "4", "--dynamic-batch", "--fp16", "--int8",
               "--calib-images", "32", "--calib-method", "percentile", "--trt", "--trt-version", "8.5",
               "--samples", "48", "--json")
    assert res.exit_code == 1
    assert "TensorRT engine not built" in res.output and "run `bash build_engine.sh`" in res.output
    files = sorted(p.name for p in out.iterdir())
    assert files == ["build_engine.sh", "calibration_cpu.json", "calibration_trt.json", "export.json", "model.onnx",
                     "model_fp16.onnx", "model_int8.onnx", "model_int8_trt.onnx", "parity.json"]
    assert not any(p.name.startswith(".exp") for p in tmp_path.iterdir())  # no temp folder left
    parity = json.loads((out / "parity.json").read_text())
    names = [r["name"] for r in parity["rows"]]
    assert names == ["pytorch", "onnxrt-cpu-fp32", "onnxrt-cpu-fp16", "onnxrt-cpu-int8", "onnxrt-cpu-int8-trt"]
    assert [r["file"] for r in parity["rows"][1:]] == ["model.onnx", "model_fp16.onnx", "model_int8.onnx",
                                                       "model_int8_trt.onnx"]
    assert parity["num_samples"] == 48 and parity["passed"] is True
    assert parity["rows"][1]["max_abs"] < 1e-4 and parity["rows"][1]["speedup_vs_fp32"] == 1.0
    for name, flavour in (("model_int8.onnx", "cpu"), ("model_int8_trt.onnx", "trt")):
        meta = {p.key: p.value for p in onnx.load(str(out / name)).metadata_props}
        assert meta["compress.precision"] == "int8" and meta["compress.int8_flavour"] == flavour
        assert onnx.load(str(out / name)).ir_version == 8
    assert "trtexec --onnx=model_int8_trt.onnx" in (out / "build_engine.sh").read_text()


def test_existing_dir_needs_force(app, digits_ckpt, tmp_path):
    out = tmp_path / "exp"
    assert _run(app, digits_ckpt, "-o", out, "--samples", "8", "--json").exit_code == 0
    (out / "old.txt").write_text("x")
    res = _run(app, digits_ckpt, "-o", out, "--samples", "8")
    assert res.exit_code == 1 and "already exists; pass --force" in res.output
    res = _run(app, digits_ckpt, "-o", out, "--samples", "8", "--force", "--json")
    assert res.exit_code == 0, res.output  # a previous export of ours is replaced whole
    assert not (out / "old.txt").exists() and (out / "model.onnx").exists()


def test_parity_failure_keeps_marked_files(app, digits_ckpt, tmp_path):
    out = tmp_path / "exp"
    res = _run(app, digits_ckpt, "-o", out, "--samples", "8", "--atol", "0", "--rtol", "fp32=0")
    assert res.exit_code == 1 and "parity failed for onnxrt-cpu-fp32" in res.output
    assert (out / "PARITY_FAILED").exists() and json.loads((out / "parity.json").read_text())["passed"] is False


def test_bad_checkpoints(app, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "weights.pt").write_bytes(b"\x80pickle")
    res = _run(app, foreign, "-o", tmp_path / "o1")
    assert res.exit_code == 1 and "is not a compress checkpoint" in res.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    (broken / "model.safetensors").write_bytes(b"")
    res = _run(app, broken, "-o", tmp_path / "o2")
    assert res.exit_code == 1 and "is not valid JSON" in res.output
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_option_errors(app, digits_ckpt, tmp_path):
    res = _run(app, digits_ckpt, "-o", tmp_path / "o", "--int8", "--calib-images", "4")
    assert res.exit_code == 1 and "--calib-images 4 is too few" in res.output
    res = _run(app, digits_ckpt, "-o", tmp_path / "o", "--dla", "0")
    assert res.exit_code == 1 and "add --trt" in res.output
    res = _run(app, digits_ckpt, "-o", tmp_path / "o", "--trt", "--trt-version", "8.2", "--opset", "17")
    assert res.exit_code == 1 and "at most 13" in res.output
    res = _run(app, digits_ckpt, "-o", tmp_path / "o", "--atol", "fp16=abc")
    assert res.exit_code == 1 and "is not PRECISION=VALUE" in res.output
    res = _run(app, digits_ckpt, "-o", tmp_path / "o", "--int8", "--int8-bias-correction", "yes")
    assert res.exit_code == 1 and "--int8-bias-correction must be auto, on or off, got 'yes'" in res.output
    res = _run(app, digits_ckpt, "-o", tmp_path / "o", "--int8-target", "trt")  # the old name of --int8-flavour
    assert res.exit_code == 1 and "--int8-target is deprecated; use --int8-flavour" in res.output
    assert "--int8-exclude and --int8-flavour shape the INT8 file; add --int8." in res.output
    assert not (tmp_path / "o").exists()


def test_a_config_file_gives_the_settings_and_flags_override_it(app, digits_ckpt, tmp_path):
    import yaml

    conf = tmp_path / "export.yaml"
    conf.write_text(yaml.safe_dump({"export": {"out": str(tmp_path / "from-file"), "fp16": True, "int8": True,
                                               "calib_images": 32, "int8_budget": None, "int8_adaround": False,
                                               "simplify": False, "parity_samples": 40,
                                               "parity": {"atol": {"fp16": 0.5}, "max_oa_drop": 7.5}}}))
    res = _run(app, digits_ckpt, "--config", conf, "--samples", "48", "--int8-bias-correction", "off", "--json")
    assert res.exit_code == 0, res.output
    out = tmp_path / "from-file"
    meta = json.loads((out / "export.json").read_text())
    cfg = meta["config"]
    assert (cfg["fp16"], cfg["int8"], cfg["calib_images"], cfg["int8_budget"], cfg["simplify"]) == (True, True, 32,
                                                                                                    None, False)
    assert (cfg["int8_adaround"], cfg["int8_bias_correction"], cfg["parity_samples"]) == ("off", "off", 48)
    assert cfg["criteria"]["atol"]["fp16"] == 0.5 and cfg["criteria"]["int8_max_accuracy_drop"] == 7.5
    assert json.loads((out / "parity.json").read_text())["num_samples"] == 48  # the flag won over the file


def test_a_config_file_with_a_wrong_key_is_one_line_and_writes_nothing(app, digits_ckpt, tmp_path):
    conf = tmp_path / "export.yaml"
    conf.write_text("fp16: true\nint8_budgett: 0.5\n")
    res = _run(app, digits_ckpt, "-o", tmp_path / "o", "--config", conf)
    assert res.exit_code == 1 and "Unknown key(s) int8_budgett in" in res.output and "int8_budget" in res.output
    conf.write_text("parity: {max_drop: 1}\n")
    res = _run(app, digits_ckpt, "-o", tmp_path / "o", "--config", conf)
    assert res.exit_code == 1 and "Unknown key(s) max_drop in" in res.output and "max_oa_drop" in res.output
    res = _run(app, digits_ckpt, "--config", tmp_path / "missing.yaml")
    assert res.exit_code == 1 and "does not exist" in res.output
    conf.write_text("fp16: true\n")
    res = _run(app, digits_ckpt, "--config", conf)
    assert res.exit_code == 1 and "export needs -o/--out DIR (or `out:` in --config)" in res.output
    assert not (tmp_path / "o").exists()
