"""Exact counts on small models (computed by hand), ResNet-18 golden numbers, PyTorch vs ONNX agreement."""
import pytest
import torch
from torch import nn

from compress.errors import UserInputError
from profiles.counting.onnx_count import analyze_onnx
from profiles.estimator.kernels import kernels_of
from profiles.counting.torch_count import analyze_torch
from tests.conftest import TransformerBlock


class Tiny(nn.Module):
    """conv3x3(3→8, bias=False) → BN → ReLU → depthwise 3x3 (groups=8, bias) → avgpool → linear(8→5)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.dw(self.act(self.bn(self.conv(x))))), 1))


# by hand at input 2x3x10x10:
# conv: out 2*8*10*10 = 1600 elements, each 3*3*3 = 27 MACs -> 43200; params 8*3*3*3 = 216
# dw:   out 1600 elements, each (8/8)*3*3 = 9 MACs -> 14400; params 8*9 + 8 = 80
# fc:   out 2*5 = 10, each 8 MACs -> 80; params 40 + 5 = 45
# bn params 16 -> total 216 + 16 + 80 + 45 = 357; deploy: BN folds (-16) and adds conv bias (+8) = 349
HAND_MACS = 43200 + 14400 + 80


def test_tiny_model_exact_counts():
    a = analyze_torch(Tiny(), (2, 3, 10, 10))
    assert a.macs == HAND_MACS and a.flops == 2 * HAND_MACS
    assert a.params == 357 and a.params_deploy == 349
    by_name = {la.name: la for la in a.layers}
    assert by_name["conv"].macs == 43200 and by_name["conv"].op_class == "conv"
    assert by_name["dw"].macs == 14400 and by_name["dw"].op_class == "dwconv" and by_name["dw"].params == 80
    assert by_name["fc"].macs == 80 and by_name["fc"].output_shape == (2, 5)
    # BN: 2 ops per element (scale + shift), ReLU 1, pool 100 inputs per output (16 outputs), bias adds 1600 + 10
    assert by_name["bn"].other_ops == 3200 and by_name["act"].other_ops == 1600 and by_name["pool"].other_ops == 1600
    # bytes (fp32): conv reads 600 input + 216 weights, writes 1600
    assert by_name["conv"].bytes_read == (600 + 216) * 4 and by_name["conv"].bytes_written == 1600 * 4
    assert a.peak_activation_bytes == 3200 * 4  # any 1600-in/1600-out layer


def test_resnet18_golden():
    import torchvision

    with torch.device("meta"):
        m = torchvision.models.resnet18()
    a = analyze_torch(m, (1, 3, 224, 224))
    assert a.macs == 1_814_073_344  # torchvision lists 1.81 "GFLOPS" (= MACs)
    assert a.params == 11_689_512
    assert round(a.macs / 1e9, 3) == 1.814 and round(a.params / 1e6, 2) == 11.69


def _randomize_bn(model):
    g = torch.Generator().manual_seed(0)
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            for t in (mod.weight.data, mod.bias.data, mod.running_mean, mod.running_var):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)  # distinct values: exporters dedupe equal tensors


@pytest.mark.parametrize("builder", ["tiny", "resnet18"])
def test_torch_and_onnx_agree(tmp_path, builder):
    import torchvision

    model = Tiny() if builder == "tiny" else torchvision.models.resnet18(num_classes=10)
    model.eval()
    _randomize_bn(model)
    shape = (1, 3, 32, 32)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.randn(shape),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], dynamic_axes={"input": {0: "batch"}})
    t = analyze_torch(model, shape)
    o = analyze_onnx(path, shape)
    assert o.macs == t.macs
    assert o.params == t.params_deploy
    assert o.file_bytes == path.stat().st_size
    o4 = analyze_onnx(path, (4, 3, 32, 32))  # dynamic batch pinned
    assert o4.macs == 4 * t.macs
    conv_t = sum(la.macs for la in t.layers if la.op_class in ("conv", "dwconv"))
    conv_o = sum(la.macs for la in o.layers if la.op_class in ("conv", "dwconv"))
    assert conv_t == conv_o


def test_bad_shapes_and_files(tmp_path):
    with pytest.raises(UserInputError, match="input shape"):
        analyze_torch(Tiny(), (1, 3, 0, 10))
    with pytest.raises(UserInputError, match="cannot run on input shape"):
        analyze_torch(Tiny(), (1, 4, 10, 10))
    with pytest.raises(UserInputError, match="does not exist"):
        analyze_onnx(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(UserInputError, match="not a readable ONNX"):
        analyze_onnx(bad)


@pytest.mark.parametrize("sdpa", [False, True])
def test_functional_attention_is_counted_as_the_onnx_graph_counts_it(tmp_path, sdpa):
    """Q·Kᵀ, softmax and P·V (written out or as SDPA) are layers of the PyTorch analysis too, with the
    MACs attributed, so both analyses give TensorRT's kernels: one attention kernel when it fuses."""
    block, shape = TransformerBlock(sdpa=sdpa).eval(), (1, 16, 64)
    path = tmp_path / "block.onnx"
    torch.onnx.export(block, (torch.randn(shape),), str(path), dynamo=False, opset_version=17)
    t, o = analyze_torch(block, shape), analyze_onnx(path)
    assert t.macs == o.macs == 16 * 64 * 64 * (3 + 1 + 4 + 4) + 2 * (2 * 16 * 16 * 32)
    assert not any("not attributed" in n for n in t.notes)
    ops = [la.op_type for la in t.layers if la.op_type in ("MatMul", "Softmax")]
    assert ops == ["MatMul", "Softmax", "MatMul"]
    fused = [k.kind for k in kernels_of(t, fused_attention=True)]
    assert fused == [k.kind for k in kernels_of(o, fused_attention=True)] == ["memory", "fc", "fc", "fc", "memory", "fc", "fc"]


def test_a_matmul_with_a_weight_is_a_layer_and_nn_softmax_is_counted_once():
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.w, self.softmax = nn.Parameter(torch.zeros(8, 4)), nn.Softmax(-1)

        def forward(self, x):
            return self.softmax(x @ self.w)

    a = analyze_torch(Head(), (2, 3, 8))
    assert [(la.op_type, la.params, la.macs) for la in a.layers] == [("MatMul", 32, 2 * 3 * 4 * 8), ("Softmax", 0, 0)]
