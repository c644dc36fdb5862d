"""Scoring exported files: ``predict_classes`` over any batching of a static-batch graph gives the model's own
top-1, and ``evaluate_onnx`` scores a file exactly as its checkpoint scores in PyTorch."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from compress.cli import app
from export.chain import ExportConfig, export_checkpoint
from export.evaluate import evaluate_onnx, predict_classes
from export.onnx import OnnxOptions, export_onnx


@pytest.mark.parametrize("batch,dynamic", [(4, False), (1, True)])
def test_predict_classes_cuts_and_pads_to_the_graphs_batch(tmp_path, tiny_cnn, rng, batch, dynamic):
    model = tiny_cnn(5, 3)
    with torch.no_grad():  # a spread of classes, so a shifted or mis-padded row would show
        model[-1].weight.mul_(50.0)
    path = tmp_path / "m.onnx"
    export_onnx(model, path, OnnxOptions(batch=batch, dynamic_batch=dynamic, image_size=8, in_chans=3), {})
    x = rng.standard_normal((13, 3, 8, 8)).astype(np.float32)
    want = model(torch.from_numpy(x)).argmax(1).numpy()
    assert len(set(want.tolist())) > 1
    man = SimpleNamespace(batch=batch if not dynamic else "batch")
    for sizes in ([13], [10, 3], [1] * 13, [6, 7]):  # batches of any size, the last one short of the graph's
        cuts = np.cumsum([0, *sizes])
        got = predict_classes(path, (x[a:b] for a, b in zip(cuts[:-1], cuts[1:])), man)
        np.testing.assert_array_equal(got, want)
    assert predict_classes(path, iter([]), man).shape == (0,)


def test_evaluate_onnx_scores_the_file_as_its_checkpoint_scores(tmp_path, one_epoch_run):
    ckpt = one_epoch_run / "checkpoints" / "best"
    torch_oa = json.loads(CliRunner().invoke(app, ["evaluate", str(ckpt), "--json"]).stdout)["metrics"]["oa"]
    for name, cfg in {"static3": ExportConfig(batch=3, force=True),
                      "dynamic": ExportConfig(dynamic_batch=True, force=True)}.items():
        export_checkpoint(ckpt, tmp_path / name, cfg)
        res = evaluate_onnx(tmp_path / name / "model.onnx", out=tmp_path / name / "ev")
        assert res.n > 300 and res.split == "test"
        assert res.metrics["oa"] == pytest.approx(torch_oa, abs=1.0 / res.n)  # at most one image flips in FP32
        assert json.loads((tmp_path / name / "ev" / "metrics.json").read_text())["metrics"]["oa"] == res.metrics["oa"]
