"""`compress profile` through typer's CliRunner: estimate, measurement, checkpoint accuracy, report files."""
import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from compress.cli import profile as profile_cli


@pytest.fixture()
def app():
    app = typer.Typer()
    profile_cli.register(app)
    app.command("noop")(lambda: None)  # keeps typer in multi-command mode, as in the real CLI
    return app


def _tiny(width):
    return torch.nn.Sequential(torch.nn.Conv2d(3, width, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(width, 4))


def _ckpt(tmp_path, name, width, oa):
    from compress.checkpoint import Manifest, save_checkpoint

    model = _tiny(width)
    man = Manifest(architecture="tiny", num_classes=4, in_chans=3, image_size=16, mean=(0.5,) * 3, std=(0.5,) * 3,
                   class_names=("a", "b", "c", "d"), metrics={"test": {"oa": oa}}, model_kwargs={"width": width})
    return save_checkpoint(tmp_path / name, model, man), model


def test_list_devices(app):
    res = CliRunner().invoke(app, ["profile", "--list-devices", "--json"])
    assert res.exit_code == 0, res.output
    names = {d["name"] for d in json.loads(res.output)}
    assert {"jetson-agx-orin-64gb", "jetson-nano", "host-cpu", "rtx-4090"} <= names


def test_estimate_for_checkpoints_writes_report(app, tmp_path, monkeypatch):
    a, model_a = _ckpt(tmp_path, "a", 8, 0.9)
    b, model_b = _ckpt(tmp_path, "b", 16, 0.95)
    import compress.models.restore as ck

    # "tiny" is not a zoo architecture: rebuild it from the manifest's model_kwargs
    monkeypatch.setattr(ck, "build_model", lambda man: _tiny(man.model_kwargs["width"]))
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["profile", str(a), str(b), "--target", "jetson-orin-nano-8gb", "--power-mode", "7W",
                                   "--precision", "fp16", "--batch-size", "1", "--batch-size", "4", "-o", str(out),
                                   "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["format"] == 2 and [m["model"] for m in rep["models"]] == [str(a), str(b)]
    t0 = rep["models"][0]
    # conv 3->8, 3x3 on 16x16 -> 14x14 outputs: 8*14*14*27 = 42336 MACs; linear 8*4 = 32
    assert t0["analysis"]["macs"] == 42336 + 32 and t0["accuracy"] == 0.9
    assert [e["batch"] for e in t0["latency"]] == [1, 4] and all(e["kind"] == "estimate" for e in t0["latency"])
    assert rep["models"][1]["analysis"]["macs"] == 16 * 14 * 14 * 27 + 64
    assert (out / "profile.json").is_file() and (out / "accuracy_vs_latency.png").stat().st_size > 1000
    md = (out / "profile.md").read_text()
    assert "ESTIMATE" in md and "FLOPs = 2 × MACs" in md and "7W (4 SMs" in md


def test_measure_on_cpu_and_errors(app):
    res = CliRunner().invoke(app, ["profile", "resnet18", "--image-size", "32", "--num-classes", "10",
                                   "--iters", "2", "--warmup", "1", "--json", "--per-layer"])
    assert res.exit_code == 0, res.output
    t = json.loads(res.output)["models"][0]
    e = t["latency"][0]
    assert e["kind"] == "measured" and e["runner"]["backend"] == "torch" and e["h2d_included"]
    assert len(t["analysis"]["layers"]) > 20
    res = CliRunner().invoke(app, ["profile", "resnet18", "--device", "jetson"])
    assert res.exit_code == 1 and "not one" in res.output
    res = CliRunner().invoke(app, ["profile", "resnet18", "--target", "jetson-nano", "--precision", "int8"])
    assert res.exit_code == 1 and "no INT8 peak" in res.output
    res = CliRunner().invoke(app, ["profile", "resnet18", "--target", "jetson-nano", "--power-mode", "9W"])
    assert res.exit_code == 1 and "no power mode" in res.output
    res = CliRunner().invoke(app, ["profile", "nosuch.onnx"])
    assert res.exit_code == 1 and "does not exist" in res.output
    res = CliRunner().invoke(app, ["profile", "resnet18", "--power-mode", "7W"])  # was silently ignored
    assert res.exit_code == 1 and "--power-mode picks a mode of the device profile given with --target" in res.output


def test_plot_points_are_labelled_by_run_or_file():
    from profiles.report import point_label

    assert point_label("runs/aid/student/checkpoints/best") == "aid/student"
    assert point_label("exports/aid/model_int8.onnx") == "aid/model_int8.onnx"
    assert point_label("resnet18") == "resnet18"


def test_a_config_file_gives_models_and_settings_and_flags_override_it(app, tmp_path):
    import yaml

    conf = tmp_path / "profile.yaml"
    conf.write_text(yaml.safe_dump({"profile": {"models": ["resnet18"], "target": "jetson-orin-nano-8gb",
                                                "power_mode": "7W", "precision": "fp16", "batches": [1, 4],
                                                "image_size": 32, "num_classes": 10, "out": str(tmp_path / "o")}}))
    res = CliRunner().invoke(app, ["profile", "--config", str(conf), "--batch-size", "2", "--json"])
    assert res.exit_code == 0, res.output
    t = json.loads(res.output)["models"][0]
    assert t["model"] == "resnet18" and [e["batch"] for e in t["latency"]] == [2]  # the flag won
    assert t["latency"][0]["kind"] == "estimate" and t["latency"][0]["power_mode"] == "7W"
    assert (tmp_path / "o" / "profile.json").is_file()
    conf.write_text("targett: jetson-nano\n")
    res = CliRunner().invoke(app, ["profile", "resnet18", "--config", str(conf)])
    assert res.exit_code == 1 and "Unknown key(s) targett in" in res.output and "target" in res.output
