"""AdaRound: every weight within one grid step of nearest, each layer's output error on its calibration rows
no higher than nearest rounding's (lower on the layers where rounding matters), the file plain Q/DQ."""
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from compress.errors import ExportError
from tests.export.test_bias_correction import _files


def test_rounding_is_floor_or_ceil_and_lowers_the_layers_output_error(tmp_path):
    from export.adaround import adaround, rounded_layers

    fp32, int8, images = _files(tmp_path)
    before = {i.name: numpy_helper.to_array(i).copy() for i in onnx.load(int8).graph.initializer}
    res = adaround(fp32, int8, images, iters=300)
    assert res.layers == 4 and res.images == 16  # three convs (one depthwise) and the classifier
    assert res.mse_adaround < res.mse_nearest and 0 < res.flipped < 0.5
    assert all(ada <= near for near, ada in res.per_layer.values())
    q = onnx.load(int8)
    onnx.checker.check_model(q)
    after = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    changed = {k for k in after if not np.array_equal(after[k], before[k])}
    layers = rounded_layers(q, onnx.load(fp32))
    assert changed and changed <= {ly.q_name for ly in layers}  # only int8 weights move: scales, biases stay
    for ly in layers:  # floor or ceil of W/s: within one step of nearest, and inside the symmetric range
        w_s = ly.fp32_weight / after[ly.scale_name].reshape(-1, *[1] * (ly.fp32_weight.ndim - 1))
        assert np.all(np.abs(after[ly.q_name] - w_s) < 1.0 + 1e-5) and np.abs(after[ly.q_name]).max() <= 127
    zero_points = [after[n.input[2]] for n in q.graph.node if n.op_type == "DequantizeLinear" and len(n.input) > 2]
    assert zero_points and all(not z.any() for z in zero_points)  # TensorRT flavour: symmetric


def test_a_cache_replays_the_learned_rounding_without_learning(tmp_path):
    from export.adaround import adaround

    fp32, int8, images = _files(tmp_path)
    plain = int8.read_bytes()
    cache = {}
    first = adaround(fp32, int8, images, iters=100, cache=cache)
    learned = int8.read_bytes()
    int8.write_bytes(plain)
    res = adaround(fp32, int8, images[:0], iters=100, cache=cache)  # no images: everything from the cache
    assert int8.read_bytes() == learned and len(cache) == 4
    # a replayed file says what its rounding did (the budget's kept AdaRound said "MSE 0 -> 0" before)
    assert res.per_layer == first.per_layer and res.mse_nearest == first.mse_nearest > res.mse_adaround > 0


def test_a_float_file_is_one_line(tmp_path):
    from export.adaround import adaround

    fp32, _, images = _files(tmp_path)
    with pytest.raises(ExportError, match="no Conv/Gemm with int8 weights"):
        adaround(fp32, fp32, images)
