"""compress models / methods / predict."""
import csv
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from compress.cli import app
from compress.methods import METHODS

runner = CliRunner()


def _ok(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return r


def test_models_lists_the_registry_with_exact_sizes():
    from compress.models import create_model

    rows = json.loads(_ok(["models", "cifar-resnet*", "--num-classes", "10", "--json"]).stdout)["models"]
    r8 = next(r for r in rows if r["name"] == "cifar-resnet8")
    assert r8["params_m"] == round(sum(p.numel() for p in create_model("cifar-resnet8", 10, 3).parameters()) / 1e6, 3)
    assert r8["image_size"] == 32 and r8["macs_g"] > 0
    assert rows and all(r["name"].startswith("cifar-resnet") for r in rows)
    text = _ok(["models"]).stdout
    assert "efficientnet-lite0" in text and "mobilenetv3-small" in text


def test_methods_lists_every_registered_method_and_one_methods_parameters():
    rows = json.loads(_ok(["methods", "--json"]).stdout)["methods"]
    assert [r["name"] for r in rows] == METHODS.names()
    assert next(r for r in rows if r["name"] == "kd")["teacher"] is True
    detail = json.loads(_ok(["methods", "erkt", "--json"]).stdout)
    params = {p["name"]: p for p in detail["params"]}
    assert params["temperature"]["default"] == 2.0
    assert params["cutmix_p"]["presets"] == {"erkt": 1.0, "erkt-usual-da": 0.1}
    assert params["cutmix_p"]["default"] == 0.1 and params["erasing_p"]["default"] == 0.0  # the usual DA
    text = _ok(["methods", "pskd"]).stdout
    assert "preset pskd" in text
    r = runner.invoke(app, ["methods", "nope"])
    assert r.exit_code == 1 and "Unknown method 'nope'" in r.output and "Traceback" not in r.output


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    out = root / "run"
    _ok(["train", "--model", "cifar_resnet8", "--epochs", "1", "--image-size", "8", "--batch-size", "256",
         "--device", "cpu", "--out", str(out), "--json"])
    from sklearn.datasets import load_digits

    d = load_digits()
    folder = root / "imgs" / "sub"
    folder.mkdir(parents=True)
    for i in range(6):
        Image.fromarray(np.clip(np.rint(d.images[i] * 255 / 16), 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    (root / "imgs" / "notes.txt").write_text("not an image")
    return out, root / "imgs"


def test_predict_files_and_a_folder(digits_run, tmp_path):
    run, imgs = digits_run
    one = json.loads(_ok(["predict", str(run), str(imgs / "sub" / "0.png"), "--json"]).stdout)
    assert len(one["rows"]) == 1 and one["classes"] == 10
    many = json.loads(_ok(["predict", str(run), str(imgs), "--top-k", "3", "--json", "-o",
                           str(tmp_path / "p.csv")]).stdout)
    assert len(many["rows"]) == 6 and all(len(r["top"]) == 3 for r in many["rows"])
    top = many["rows"][0]["top"]
    assert top[0][1] >= top[1][1] >= top[2][1] and abs(many["rows"][0]["confidence"] - top[0][1]) < 1e-9
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == 6 and rows[0]["label"] == many["rows"][0]["label"]
    assert "confidence %" in _ok(["predict", str(run), str(imgs)]).stdout


def test_predict_an_exported_onnx_file_agrees_with_its_checkpoint(digits_run, tmp_path):
    run, imgs = digits_run
    _ok(["export", str(run), "-o", str(tmp_path / "e")])
    onnx_file = next((tmp_path / "e").glob("*.onnx"))
    a = json.loads(_ok(["predict", str(run), str(imgs), "--json"]).stdout)["rows"]
    b = json.loads(_ok(["predict", str(onnx_file), str(imgs), "--json"]).stdout)["rows"]
    assert [r["label"] for r in a] == [r["label"] for r in b]
    assert max(abs(x["confidence"] - y["confidence"]) for x, y in zip(a, b)) < 1e-4


@pytest.mark.parametrize("args,message", [(["{run}", "{nothing}"], "no image files"),
                                          (["{run}", "missing.png"], "neither an image file nor a folder"),
                                          (["{run}", "{imgs}", "--top-k", "0"], "--top-k must be"),
                                          (["{run}", "{imgs}", "-o", "{tmp}/p.txt"], ".csv or .json")])
def test_predict_bad_input_is_one_line(digits_run, tmp_path, args, message):
    run, imgs = digits_run
    (tmp_path / "empty").mkdir()
    args = [a.format(run=run, imgs=imgs, nothing=tmp_path / "empty", tmp=tmp_path) for a in args]
    r = runner.invoke(app, ["predict", *args])
    assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output


def test_paths_that_look_like_markup_print_as_they_are(digits_run, tmp_path):
    import shutil

    run, imgs = digits_run
    odd = tmp_path / "[v2] shots"
    odd.mkdir()
    shutil.copy(imgs / "sub" / "0.png", odd / "[draft] beach.png")
    out = _ok(["predict", str(run), str(odd)]).stdout
    assert "[draft] beach.png" in out.replace("\n", "") or "[draft]" in out
    res = runner.invoke(app, ["train", "--image-size", "8", "--epochs", "1", "--batch-size", "256", "--device", "cpu",
                              "--out", str(tmp_path / "mk" / "run[/b]")])
    assert res.exit_code == 0, res.output
    assert "run[/b]" in res.output.replace("\n", "")
