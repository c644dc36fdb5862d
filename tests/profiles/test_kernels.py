"""TensorRT's fusions as the kernel rules count them: softmax attention (when and how it fuses), epilogues
across a reshape, and the TensorRT version read from a source's text."""
import math

import pytest
import torch

from profiles.counting.analysis import LayerStats, ModelAnalysis
from profiles.estimator.kernels import attention_fuses, kernels_of, tensorrt_version
from profiles.counting.onnx_count import analyze_onnx
from tests.conftest import TransformerBlock


def _layer(name, op, cls, shape, macs=0, params=0, inp=0):
    out = math.prod(shape)
    return LayerStats(name, op, cls, shape, params, macs, 0, inp or out, out, 4, 1, 1)


def _attention(heads=3, tokens=197, head=64, v_transposed=False):
    """qkv Linear, the scalar scales of Q and K, Q·Kᵀ, Softmax, P·V (or V·Pᵀ, YOLO11's order), proj Linear."""
    d, qkv = heads * head, (1, heads, tokens, head)
    scores = (1, heads, tokens, tokens)
    out = (1, heads, head, tokens) if v_transposed else qkv
    n = math.prod(qkv)
    return ModelAnalysis("onnx", (1, tokens, d), 0, 0, 0, 0, 0, (
        _layer("qkv", "MatMul", "linear", (1, tokens, 3 * d), macs=tokens * d * 3 * d, params=3 * d * d, inp=n),
        _layer("scale_q", "Mul", "elementwise", qkv, inp=n + 1),
        _layer("scale_k", "Mul", "elementwise", (1, heads, head, tokens), inp=n + 1),
        _layer("qk", "MatMul", "linear", scores, macs=heads * tokens * tokens * head, inp=2 * n),
        _layer("softmax", "Softmax", "elementwise", scores),
        _layer("pv", "MatMul", "linear", out, macs=heads * tokens * tokens * head, inp=math.prod(scores) + n),
        _layer("proj", "Gemm", "linear", (tokens, d), macs=tokens * d * d, params=d * d, inp=n),
        _layer("residual", "Add", "elementwise", (1, tokens, d), inp=2 * n)))


def test_softmax_attention_is_one_kernel_when_fused():
    a = _attention()
    plain = kernels_of(a)
    assert [k.name for k in plain] == ["qkv", "scale_q", "scale_k", "qk", "softmax", "pv", "proj"]
    fused = kernels_of(a, fused_attention=True)
    assert [(k.name, k.kind) for k in fused] == [("qkv", "fc"), ("qk", "fc"), ("proj", "fc")]
    n, scores = 3 * 197 * 64, 3 * 197 * 197
    assert fused[1].macs == 2 * 3 * 197 * 197 * 64
    assert fused[1].elements == 2 * n + n + n  # Q, K and V read, the output written; the scores never leave
    assert sum(k.macs for k in fused) == sum(k.macs for k in plain)
    assert plain[3].elements == 2 * n + scores  # unfused, Q·Kᵀ writes the scores (and P·V reads them back)


def test_attention_fuses_only_within_tensorrts_head_size_rule():
    assert len(kernels_of(_attention(head=48), fused_attention=True)) == 3
    assert len(kernels_of(_attention(head=36), fused_attention=True)) == 7  # 36 is not a multiple of 8
    assert len(kernels_of(_attention(head=512), fused_attention=True)) == 7  # above 256
    assert len(kernels_of(_attention(head=64, v_transposed=True), fused_attention=True)) == 3  # V·Pᵀ, H_v = 64


def test_an_epilogue_fuses_across_a_reshape():
    """timm's ViT: the projection Gemm writes (197, 192), its residual Add (1, 197, 192): one tensor."""
    ks = kernels_of(_attention())
    assert ks[-1].name == "proj" and ks[-1].elements == 3 * 197 * 64 * 3 + 192 * 192  # in + out + residual + W


@pytest.mark.parametrize("cc, precision, version, fused", [
    (8.7, "fp16", (8, 6), True), (8.7, "fp16", (10, 3), True), (8.9, "fp16", (10, 0), True),
    (8.7, "fp16", (8, 5), False),  # JetPack 5: MatMul and Softmax kernels (NVIDIA/TensorRT#2736)
    (7.2, "fp16", (8, 6), False),  # Xavier's Volta is below SM 7.5
    (8.7, "int8", (10, 3), False),  # implicit INT8 quantization is not fused
    (8.7, "fp32", (10, 3), False), (8.7, "fp16", None, False)])
def test_attention_fusion_needs_tensorrt_8_6_sm_7_5_and_fp16(cc, precision, version, fused):
    assert attention_fuses(cc, precision, version) is fused


@pytest.mark.parametrize("text, version", [
    ("8.6.2 (JetPack 6.0)", (8, 6)), ("10.3 (JetPack 6.2)", (10, 3)), ("7 (JetPack 4.x, torch2trt tables)", (7, 0)),
    ("JetPack 6 (TensorRT 10.x)", (8, 6)), ("JetPack 5", (8, 4)), ("not stated", None), (None, None)])
def test_tensorrt_version_is_read_from_a_sources_text(text, version):
    assert tensorrt_version(text) == version


def test_an_exported_transformer_block_fuses_as_tensorrt_8_6_does(tmp_path):
    path = tmp_path / "block.onnx"
    torch.onnx.export(TransformerBlock().eval(), (torch.randn(1, 16, 64),), str(path), dynamo=False, opset_version=17)
    a = analyze_onnx(path)
    plain = [k.kind for k in kernels_of(a)]
    fused = [k.kind for k in kernels_of(a, fused_attention=True)]
    # LayerNorm, qkv, [scale, Q·Kᵀ, softmax, P·V | attention], proj (+ residual), LayerNorm, fc1 (+ GELU),
    # fc2 (+ residual)
    assert fused == ["memory", "fc", "fc", "fc", "memory", "fc", "fc"]
    # unfused: the scale of Q, Q·Kᵀ, the softmax and P·V are four kernels (the scale's exponent is folded)
    assert plain == ["memory", "fc", "memory", "fc", "memory", "fc", "fc", "memory", "fc", "fc"]
