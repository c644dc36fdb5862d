"""``compress export --int8-budget`` end to end on a trained checkpoint whose INT8 file loses accuracy."""
from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from compress.checkpoint import read_manifest
from compress.cli.export import register
from compress.data.samples import load_samples

OUTLIER_CONV = "/layer2/layer2.0/conv2/Conv"


@pytest.fixture(scope="module")
def app():
    a = typer.Typer()
    register(a)

    @a.command("noop")
    def _noop() -> None:
        pass

    return a


def _export(app, ckpt, out, *args):
    res = CliRunner().invoke(app, ["export", str(ckpt), "-o", str(out), "--int8", "--samples", "64", *args])
    meta = json.loads((out / "export.json").read_text())
    parity = json.loads((out / "parity.json").read_text())
    assert res.exit_code == (0 if parity["passed"] else 1), res.output  # exit 1 exactly when a row failed
    _export.output = res.output
    return meta["result"]["int8"], parity


def _val_accuracy(ckpt, path):
    import onnxruntime as ort

    s = load_samples(ckpt, read_manifest(ckpt), "val", 1000)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = s.images.numpy()
    pred = np.concatenate([sess.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))]).argmax(1)
    return float((pred == s.labels.numpy()).mean() * 100.0), len(x)


@pytest.fixture(scope="module")
def reference(outlier_ckpt, tmp_path_factory):
    """Validation OA of the float model and of the INT8 file that quantises every layer."""
    out = tmp_path_factory.mktemp("exp") / "all_int8"
    app_ = typer.Typer()
    register(app_)
    app_.command("noop")(lambda: None)
    (variant,), _ = _export(app_, outlier_ckpt, out, "--no-int8-fallback")
    assert variant["fallback"] is None
    fp32, n = _val_accuracy(outlier_ckpt, out / "model.onnx")
    int8, _ = _val_accuracy(outlier_ckpt, out / "model_int8.onnx")
    return fp32, int8, n


def test_the_outlier_checkpoint_is_trained_and_breaks_plain_int8(reference):
    fp32, int8, n = reference
    assert n == 143 and fp32 > 90.0  # a trained model, not a constant classifier
    assert fp32 - int8 > 20.0  # every layer in INT8 loses far more than any budget


def test_the_budget_fallback_keeps_the_outlier_layer_float_and_meets_the_budget(app, outlier_ckpt, tmp_path, reference):
    fp32, _, n = reference
    # CLE off: it removes this outlier (the next test), leaving the fallback nothing to do
    (variant,), _ = _export(app, outlier_ckpt, tmp_path / "exp", "--int8-budget", "2", "--int8-cle", "off")
    fb = variant["fallback"]
    # the validation images, then training images: all labelled, so both agreement and the drop are judged
    assert fb["budget"] == 2.0 and fb["images"] == fb["labelled"] == 1000 and fb["reference_accuracy"] > 90.0
    first, *rest = fb["steps"]
    assert first["float_nodes"] == [] and first["drop"] > 20.0
    assert list(fb["fixes"]) == ["AdaRound", "bias correction"]  # cheap fixes first, before any float layer
    said = " ".join(_export.output.split())
    for fix in fb["fixes"]:
        assert f"model_int8.onnx: {fix} {'kept' if fix in fb['applied'] else 'not kept'}: " in said
    rest = [s for s in rest if s["added"] not in fb["applied"]]
    assert rest, "the fallback never kept a layer in float"
    assert max(fb["sensitivity"], key=fb["sensitivity"].get) == OUTLIER_CONV
    assert rest[0]["added"] == OUTLIER_CONV
    chosen = fb["chosen"]
    assert fb["met"] is True and chosen["disagreement"] <= 2.0 and OUTLIER_CONV in chosen["float_nodes"]
    assert chosen["drop"] <= chosen["disagreement"]  # a drop needs a changed prediction (same images)
    assert len(chosen["float_nodes"]) <= 5  # at most half of the 10 weighted layers
    # the file written is the one the fallback chose: measured here independently of the judge
    acc, _ = _val_accuracy(outlier_ckpt, tmp_path / "exp" / "model_int8.onnx")
    assert fp32 - acc <= 2.0 and n == 143


def test_by_default_cross_layer_equalisation_removes_the_outlier_and_no_layer_stays_float(app, outlier_ckpt, tmp_path,
                                                                                           reference):
    fp32, int8, n = reference
    (variant,), _ = _export(app, outlier_ckpt, tmp_path / "exp", "--int8-budget", "2")
    fb = variant["fallback"]
    assert fb["steps"][0]["drop"] > 20.0 and fb["fixes"]["CLE"]["drop"] <= 2.0  # plain INT8 vs from the CLE'd graph
    assert fb["applied"][0] == "CLE" and fb["met"] and fb["chosen"]["float_nodes"] == [] and fb["sensitivity"] == {}
    acc, _ = _val_accuracy(outlier_ckpt, tmp_path / "exp" / "model_int8.onnx")  # the written file, judged apart
    assert fp32 - acc <= 2.0 < fp32 - int8 and n == 143


def test_an_excluded_outlier_layer_meets_the_budget_in_one_step(app, outlier_ckpt, tmp_path, reference):
    fp32, _, _ = reference
    (variant,), _ = _export(app, outlier_ckpt, tmp_path / "exp", "--int8-budget", "2", "--int8-exclude", "layer2.0.conv2")
    fb = variant["fallback"]
    # one quantisation with the layer float; the only later steps are the cheap fixes it kept (same layers)
    assert [s["float_nodes"] for s in fb["steps"]] == [[OUTLIER_CONV]] * (1 + len(fb["applied"]))
    assert [s["added"] for s in fb["steps"][1:]] == fb["applied"] and fb["sensitivity"] == {}
    assert fb["met"] is True and fb["chosen"]["disagreement"] <= 2.0
    acc, _ = _val_accuracy(outlier_ckpt, tmp_path / "exp" / "model_int8.onnx")
    assert fp32 - acc <= 2.0
