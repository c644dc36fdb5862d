"""compress quantize --qat end to end on a tiny digits model: parity of the trained fake-quant model with the
exported INT8 file, and FP32 / post-training / QAD accuracy on the test split."""
import json

from typer.testing import CliRunner

from compress.cli import app


def test_qad_exports_what_it_trained(tmp_path):
    r = CliRunner()
    assert r.invoke(app, ["train", "--model", "cifar_resnet8", "--epochs", "2", "--image-size", "8",
                          "--batch-size", "256", "--out", str(tmp_path / "t"), "--json"]).exit_code == 0
    res = r.invoke(app, ["quantize", str(tmp_path / "t"), "--qat", "--epochs", "1", "--batch-size", "128",
                         "--calib-images", "64", "--samples", "64", "-o", str(tmp_path / "q"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out["accuracy"]) == {"fp32", "ptq", "qad"} and out["test_images"] > 300
    row = out["parity"]["rows"][-1]
    assert row["top1_agreement"] >= 0.99 and row["passed"]
    files = {p.name for p in (tmp_path / "q" / "export").iterdir()}
    assert {"model.onnx", "model_int8.onnx", "model_int8_ptq.onnx", "parity.json", "export.json"} <= files
    ev = json.loads(r.invoke(app, ["evaluate", str(tmp_path / "q" / "export" / "model_int8.onnx"), "--json"]).stdout)
    assert ev["metrics"]["oa"] == out["accuracy"]["qad"]
