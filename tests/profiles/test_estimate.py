"""Per-kernel estimate (fusion rules, hand-computed cost), the fit (recovers known factors, reproducible
from published.csv), every shipped profile × precision, user profiles."""
import math
from dataclasses import replace

import pytest
import torch
import yaml
from torch import nn

from compress.errors import UserInputError
from profiles.counting.analysis import LayerStats, ModelAnalysis
from profiles.calibration.fit import (FIT_F_SCALE, FIT_LOSS, PublishedPoint, fit_efficiency, predict_point)
from profiles.device import list_device_profiles, load_device_profile
from profiles.estimator.estimate import Efficiency, estimate_latency
from profiles.estimator.kernels import kernels_of
from profiles.counting.torch_count import analyze_torch

DEVICE = {
    "name": "toy", "kind": "jetson",
    **{k: {"value": v, "source": "test"} for k, v in dict(
        compute_capability="8.7", sm_count=4, gpu_max_mhz=1000, peak_fp32_tflops=1.0, peak_fp16_tflops=10.0,
        peak_int8_tops=20.0, memory_bandwidth_gbs=100.0, memory_max_mhz=2000, cpu_max_mhz=1000).items()},
    "power_modes": [{"name": "full", "id": 0, "active_sms": 4, "gpu_max_mhz": 1000, "emc_max_mhz": 2000, "source": "t"},
                    {"name": "half", "id": 1, "active_sms": 2, "gpu_max_mhz": 500, "emc_max_mhz": 1000, "source": "t"}],
}
EFF = Efficiency(conv=0.5, pointwise=0.4, depthwise=0.1, grouped=0.2, fc=0.25, int8=0.5, fp32=0.8, memory=0.5,
                 kernel_cycles=1000, host_sync_us=100, host_copy_us=100, copy=0.1, band_low=0.8, band_high=1.25,
                 source="test")


def _device(tmp_path, compute_capability=None):
    """The toy profile (Ampere, 8.7), or a copy named toy<cc> with another compute capability."""
    spec, name = DEVICE, "toy"
    if compute_capability:
        name = f"toy{compute_capability.replace('.', '')}"
        spec = {**DEVICE, "name": name, "compute_capability": {"value": compute_capability, "source": "test"}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return load_device_profile(str(path))


def _layer(name, op, cls, shape, macs=0, params=0, inp=0, kernel=1, groups=1):
    out = math.prod(shape)
    return LayerStats(name, op, cls, shape, params, macs, 0, inp or out, out, 4, kernel, groups)


def _analysis(*layers, batch=1):
    return ModelAnalysis("onnx", (batch, 3, 8, 8), 0, 0, sum(la.macs for la in layers), 0, 0, tuple(layers))


def test_kernels_follow_tensorrt_fusion():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 16, 1), nn.Hardswish(),
                          nn.Conv2d(16, 16, 3, padding=1, groups=4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))
    kinds = [k.kind for k in kernels_of(analyze_torch(model, (1, 3, 8, 8)))]
    assert kinds == ["conv", "depthwise", "pointwise", "grouped", "pool", "fc"]  # BN, ReLU, Hardswish fused
    se = _analysis(_layer("c", "Conv", "conv", (1, 8, 4, 4), macs=1000, kernel=9),
                   _layer("s", "Sigmoid", "elementwise", (1, 8, 4, 4)),
                   _layer("m", "Mul", "elementwise", (1, 8, 4, 4), inp=256),  # SiLU: fused, reads x once more
                   _layer("p", "GlobalAveragePool", "pool", (1, 8, 1, 1), inp=128),
                   _layer("e", "Conv", "conv", (1, 8, 1, 1), macs=64),
                   _layer("x", "Mul", "elementwise", (1, 8, 4, 4), inp=136),  # SE scale: broadcast, own pass
                   _layer("r", "Resize", "elementwise", (1, 8, 8, 8), inp=128))
    ks = kernels_of(se)
    assert [k.kind for k in ks] == ["conv", "pool", "pointwise", "memory", "memory"]
    assert ks[0].elements == 128 + 128 + 128  # conv in + out + SiLU's second read of x


def test_estimate_by_hand(tmp_path):
    dev = _device(tmp_path)
    a = _analysis(_layer("c", "Conv", "conv", (1, 10**6), macs=10**9, params=1000, inp=10**6, kernel=9))
    est = estimate_latency(a, dev, "fp16", "half", EFF)
    # peak 10 TFLOPS * 2/4 SMs * 500/1000 MHz = 2.5e12; compute 2e9 / (2.5e12 * 0.5) = 1.6 ms
    # memory (1e6 + 1e3 + 1e6) * 2 B / (100e9 * 1000/2000 * 0.5) = 0.16 ms; fixed 1000 cycles / 500 MHz = 2 us
    assert est.latency_ms == pytest.approx(1.6 + 0.002)
    assert (est.low_ms, est.high_ms) == pytest.approx((0.8 * est.latency_ms, 1.25 * est.latency_ms))
    assert est.kind == "estimate" and est.kernels == 1 and est.compute_bound_layers == 1
    assert "ESTIMATE" in est.assumptions[0] and "2 SMs" in est.assumptions[0] and "0.80–1.25" in est.assumptions[1]
    int8 = estimate_latency(a, dev, "int8", "half", EFF)  # 2x the peak at half the FP16 fraction
    assert int8.latency_ms == pytest.approx(2e9 / (5e12 * 0.5 * 0.5) * 1e3 + 0.002)
    fp32 = estimate_latency(a, dev, "fp32", "full", EFF)  # compute capability 8.7: TF32 = FP16 peak / 2
    assert fp32.latency_ms == pytest.approx(2e9 / (5e12 * 0.5 * 0.8) * 1e3 + 0.001)
    mem = estimate_latency(_analysis(_layer("m", "Softmax", "elementwise", (1, 10**7), inp=10**7)), dev, "fp16",
                           "full", EFF)
    assert mem.memory_bound_layers == 1 and mem.latency_ms == pytest.approx(4e7 / (100e9 * 0.5) * 1e3 + 0.001)


def test_tensor_core_fraction_follows_the_architecture(tmp_path):
    """Volta / Ampere tensor cores keep e[arch] of the class fractions; FP32 on Volta and CUDA-core GPUs
    do not (FP32 on Ampere is TF32, on tensor cores)."""
    eff = Efficiency(**{**EFF.__dict__, "volta": 0.25, "ampere": 0.5})
    a = _analysis(_layer("c", "Conv", "conv", (1, 10**6), macs=10**9, inp=10**6, kernel=9))
    ampere, volta, pascal = _device(tmp_path), _device(tmp_path, "7.2"), _device(tmp_path, "6.2")
    fp16 = 2e9 / (10e12 * 0.5) * 1e3  # ms at full peak and the conv fraction
    assert estimate_latency(a, ampere, "fp16", "full", eff).latency_ms == pytest.approx(fp16 / 0.5 + 0.001)
    assert estimate_latency(a, volta, "fp16", "full", eff).latency_ms == pytest.approx(fp16 / 0.25 + 0.001)
    assert estimate_latency(a, pascal, "fp16", "full", eff).latency_ms == pytest.approx(fp16 + 0.001)
    assert estimate_latency(a, volta, "fp32", "full", eff).latency_ms == pytest.approx(2e9 / (1e12 * 0.4) * 1e3 + 0.001)
    assert estimate_latency(a, ampere, "fp32", "full", eff).latency_ms == pytest.approx(
        2e9 / (5e12 * 0.5 * 0.8 * 0.5) * 1e3 + 0.001)
    assert "Volta tensor cores at 0.25" in estimate_latency(a, volta, "int8", "full", eff).assumptions[0]
    assert "CUDA cores" in estimate_latency(a, pascal, "fp16", "full", eff).assumptions[0]


def test_host_timed_points_add_cpu_scaled_overhead(tmp_path):
    dev = _device(tmp_path)
    a = _analysis(_layer("c", "Conv", "conv", (1, 10**6), macs=10**9, inp=10**6, kernel=9))
    gpu = estimate_latency(a, dev, "fp16", "full", EFF).latency_ms
    point = PublishedPoint("toy", "full", "m", "f", "fp16", 1, 8, 1.0, "host_sync", "10", "t")
    # 100 us at a 2 GHz reference CPU, on this 1 GHz CPU: 200 us
    assert predict_point(point, a, dev, EFF) == pytest.approx(gpu + 0.2)


@pytest.mark.parametrize("text, legacy", [("8.2.1", True), ("7 (JetPack 4.x, torch2trt tables)", True),
                                          ("8.5 (JetPack 5.x, assumed)", False), ("10.3 (JetPack 6.2)", False),
                                          ("8.4.0 (JetPack 5.0.1)", False), ("8.2.1 (JetPack 4.6)", True),
                                          ("JetPack 6 (TensorRT 10.x)", False), ("JetPack 4", True), ("not stated", None)])
def test_tensorrt_generation_is_read_from_the_version_text(text, legacy):
    from profiles.estimator.estimate import legacy_tensorrt

    assert legacy_tensorrt(text) is legacy


def test_per_kernel_cost_follows_the_tensorrt_the_device_runs(tmp_path):
    """A Nano runs at most TensorRT 8.2 (JetPack 4): its estimates, and its published points that do not
    name a version, use the pre-8.4 per-kernel cycles; a stated version wins over the device's."""
    eff = Efficiency(**{**EFF.__dict__, "kernel_cycles": 1000, "kernel_cycles_trt7": 9000})
    a = _analysis(_layer("c", "Conv", "conv", (1, 10**6), macs=10**9, inp=10**6, kernel=9))
    dev = _device(tmp_path)  # no tensorrt value: the 8.4+ cycles
    old = load_device_profile(str(_with_tensorrt(tmp_path, "8.2.1")))
    base = estimate_latency(a, dev, "fp16", "full", eff).latency_ms
    assert estimate_latency(a, old, "fp16", "full", eff).latency_ms == pytest.approx(base + 8000 / 1e9 * 1e3)
    assert estimate_latency(a, old, "fp16", "full", eff, tensorrt="10.3").latency_ms == pytest.approx(base)
    assert "TensorRT before 8.4" in estimate_latency(a, old, "fp16", "full", eff).assumptions[0]
    point = PublishedPoint("toy", "full", "m", "f", "fp16", 1, 8, 1.0, "gpu_compute", "not stated", "t")
    assert predict_point(point, a, old, eff) == pytest.approx(base + 0.008)
    assert load_device_profile("jetson-nano").values["tensorrt"].startswith("8.2")


def _with_tensorrt(tmp_path, version):
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({**DEVICE, "name": "old", "tensorrt": {"value": version, "source": "test"}}))
    return path


def test_unsupported_precision(tmp_path):
    a = _analysis(_layer("c", "Conv", "conv", (1, 4), macs=1))
    with pytest.raises(UserInputError, match="no INT8 peak"):
        estimate_latency(a, load_device_profile("jetson-nano"), "int8")
    with pytest.raises(UserInputError, match="Unknown precision"):
        estimate_latency(a, _device(tmp_path), "fp8")


TRUTH = Efficiency(conv=0.4, pointwise=0.3, depthwise=0.05, grouped=0.1, fc=0.2, int8=0.6, fp32=0.7, memory=0.7,
                   kernel_cycles=2000, host_sync_us=300, host_copy_us=50, copy=0.2, ampere=0.7)


def _synthetic(tmp_path):
    """Devices, analyses and points whose latencies ``TRUTH`` predicts exactly."""
    devices = {"toy": _device(tmp_path), "toy62": _device(tmp_path, "6.2")}  # Ampere and a CUDA-core GPU
    specs = [("conv", 10**9, 9), ("conv", 10**7, 9), ("pointwise", 5 * 10**8, 1), ("depthwise", 10**6, 9),
             ("conv", 3 * 10**9, 9), ("pointwise", 10**6, 1)]
    analyses, points = {}, []
    for i, (cls, macs, k) in enumerate(specs):
        shape = (1, 10 ** (4 + i % 3))
        layers = [_layer(f"l{j}", "Conv", "dwconv" if cls == "depthwise" else "conv", shape, macs=macs // (j + 1),
                         kernel=k, groups=math.prod(shape) if cls == "depthwise" else 1) for j in range(1 + i)]
        analyses[(f"m{i}", 1, 8)] = _analysis(*layers)
        for prec, timing, dev in (("fp16", "gpu_compute", "toy"), ("int8", "host_sync", "toy"),
                                  ("fp32", "gpu_compute", "toy"), ("fp16", "gpu_compute", "toy62")):
            p = PublishedPoint(dev, "full" if i % 2 else "half", f"m{i}", "f", prec, 1, 8, 1.0, timing, "10", "t")
            ms = predict_point(p, analyses[(p.model, 1, 8)], devices[dev], TRUTH)
            points.append(PublishedPoint(*[*p.__dict__.values()][:7], ms, timing, "10", "synthetic"))
    return devices, analyses, points


def test_fit_recovers_known_factors(tmp_path):
    devices, analyses, points = _synthetic(tmp_path)
    fit = fit_efficiency(points, analyses, devices)
    worst = max(abs(predict_point(p, analyses[(p.model, 1, 8)], devices[p.device], fit) / p.latency_ms - 1)
                for p in points)
    assert worst < 0.01
    assert fit.conv == pytest.approx(0.4, rel=0.05) and fit.int8 == pytest.approx(0.6, rel=0.05)
    assert fit.ampere == pytest.approx(0.7, rel=0.05)


def test_the_robust_loss_keeps_one_bad_row_from_moving_the_fit(tmp_path):
    devices, analyses, points = _synthetic(tmp_path)
    bad = next(i for i, p in enumerate(points) if p.model == "m4" and p.precision == "fp16" and p.device == "toy")
    points[bad] = replace(points[bad], latency_ms=3 * points[bad].latency_ms)  # a row no model explains

    def clean_error(eff):  # median |error| of the 23 untouched rows
        errs = sorted(abs(predict_point(p, analyses[(p.model, 1, 8)], devices[p.device], eff) / p.latency_ms - 1)
                      for i, p in enumerate(points) if i != bad)
        return errs[len(errs) // 2]

    robust = fit_efficiency(points, analyses, devices)  # soft-L1, the default
    squared = fit_efficiency(points, analyses, devices, loss="linear")
    assert (FIT_LOSS, FIT_F_SCALE) == ("soft_l1", 0.2)
    assert clean_error(robust) < 0.02 < clean_error(squared)
    assert robust.conv == pytest.approx(TRUTH.conv, rel=0.05)


def test_every_profile_and_precision_gives_a_labelled_estimate():
    a = analyze_torch(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                    nn.Linear(16, 10)), (1, 3, 32, 32))
    n = 0
    for dev in list_device_profiles():
        if dev.kind == "cpu":
            continue
        for mode in dev.power_modes:
            for prec in ("fp32", "fp16", "int8"):
                try:
                    est = estimate_latency(a, dev, prec, mode.name)
                except UserInputError as exc:
                    assert "no INT8 peak" in str(exc) and dev.peak_ops("int8") is None
                    continue
                assert math.isfinite(est.latency_ms) and 0 < est.low_ms < est.latency_ms < est.high_ms
                assert est.assumptions[0].startswith("ESTIMATE") and "error band" in est.assumptions[1]
                n += 1
    assert n > 60


def test_a_users_profile_file_still_works(tmp_path):
    est = estimate_latency(analyze_torch(nn.Conv2d(3, 8, 3), (1, 3, 16, 16)), _device(tmp_path), "fp16")
    assert est.device == "toy" and est.power_mode == "full" and est.latency_ms > 0
    assert torch.isfinite(torch.tensor(est.high_ms))


def test_attention_fuses_for_the_tensorrt_and_precision_of_the_estimate(tmp_path):
    """One softmax attention: five kernels before TensorRT 8.6, in INT8 and on Volta; one on 8.6+ in FP16."""
    s, n = (1, 2, 64, 64), 2 * 64 * 32
    a = _analysis(_layer("scale", "Mul", "elementwise", (1, 2, 64, 32), inp=n + 1),
                  _layer("qk", "MatMul", "linear", s, macs=2 * 64 * 64 * 32, inp=2 * n),
                  _layer("softmax", "Softmax", "elementwise", s),
                  _layer("pv", "MatMul", "linear", (1, 2, 64, 32), macs=2 * 64 * 64 * 32, inp=math.prod(s) + n))
    dev, volta = _device(tmp_path), _device(tmp_path, "7.2")
    assert estimate_latency(a, dev, "fp16", "full", EFF, tensorrt="8.5.2").kernels == 4
    fused = estimate_latency(a, dev, "fp16", "full", EFF, tensorrt="10.3")
    assert fused.kernels == 1 and "attention is one kernel" in fused.assumptions[2]
    assert estimate_latency(a, dev, "int8", "full", EFF, tensorrt="10.3").kernels == 4
    assert estimate_latency(a, volta, "fp16", "full", EFF, tensorrt="8.6.2").kernels == 4
