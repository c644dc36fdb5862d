"""ONNX Runtime's own warnings (an unused initializer per activation constant, dozens of lines) do not reach
the user during INT8 export or when a file is run; errors still would."""
import numpy as np


def test_int8_quantisation_and_its_session_print_no_onnxruntime_warnings(tmp_path, capfd):
    from compress.jobs.device_measure import timing_onnx
    from compress.models import create_model
    from export.int8 import quantize_int8
    import onnx

    from runtime.onnx_simplify import simplify_model
    from runtime.onnxrt import OnnxrtRunner

    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    raw = onnx.load_from_string(timing_onnx(create_model("efficientnet-lite0", 10, 3).eval(), (1, 3, 64, 64)))
    onnx.save(simplify_model(raw)[0], fp32)  # as `compress export` writes it (TF "same" padding folded)
    quantize_int8(fp32, int8, np.random.default_rng(0).random((16, 3, 64, 64), dtype=np.float32))
    with OnnxrtRunner(str(int8), providers="cpu") as runner:
        out = runner.infer({"input": np.zeros((1, 3, 64, 64), np.float32)})
    assert np.isfinite(next(iter(out.values()))).all()
    err = capfd.readouterr().err
    assert "CleanUnusedInitializersAndNodeArgs" not in err and "[W:onnxruntime" not in err
