"""Roofline estimate (hand-computed), calibration fit (recovers known factors), stored calibration."""
import pytest
import yaml

from compress.errors import UserInputError
from profiles.analysis import LayerStats, ModelAnalysis
from profiles.calibration import PublishedPoint, fit_efficiency, load_published
from profiles.device import load_device_profile
from profiles.estimate import Efficiency, estimate_latency, load_efficiency

DEVICE = {
    "name": "toy", "kind": "jetson",
    **{k: {"value": v, "source": "test"} for k, v in dict(
        sm_count=4, gpu_max_mhz=1000, peak_fp32_tflops=5.0, peak_fp16_tflops=10.0, peak_int8_tops=20.0,
        memory_bandwidth_gbs=100.0, memory_max_mhz=2000).items()},
    "power_modes": [{"name": "full", "id": 0, "active_sms": 4, "gpu_max_mhz": 1000, "emc_max_mhz": 2000, "source": "t"},
                    {"name": "half", "id": 1, "active_sms": 2, "gpu_max_mhz": 500, "emc_max_mhz": 1000, "source": "t"}],
}


def _device(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(DEVICE))
    return load_device_profile(str(path))


def _analysis(macs, inp, params, out, cls="conv", batch=1):
    la = LayerStats("l", "Conv2d", cls, (batch, 1), params, macs, 0, inp, out)
    relu = LayerStats("r", "ReLU", "elementwise", (batch, 1), 0, 0, out, out, out)
    return ModelAnalysis("pytorch", (batch, 3, 8, 8), params, params, macs, 0, 0, (la, relu))


def test_roofline_by_hand(tmp_path):
    dev = _device(tmp_path)
    eff = Efficiency(conv=0.5, dwconv=0.25, memory=0.5, launch_us=10, per_inference_us=100, source="test")
    a = _analysis(macs=10**9, inp=10**6, params=1000, out=10**6)
    est = estimate_latency(a, dev, "fp16", "half", eff)
    # peak 10 TFLOPS * 2/4 SMs * 500/1000 MHz = 2.5e12; compute = 2e9 / (2.5e12*0.5) = 1.6 ms
    # memory = (1e6 + 1e3 + 1e6) * 2 B / (100e9 * 1000/2000 * 0.5) = 0.16008 ms -> compute bound
    assert est.latency_ms == pytest.approx(1.6 + 0.010 + 0.100)
    assert est.kind == "estimate" and est.kernels == 1 and est.compute_bound_layers == 1
    assert "ESTIMATE" in est.assumptions[0] and "2 SMs" in est.assumptions[0]
    # a memory-bound layer: few MACs, fp32 bytes
    m = estimate_latency(_analysis(10**3, 10**7, 0, 10**7), dev, "fp32", "full", eff)
    assert m.memory_bound_layers == 1
    assert m.latency_ms == pytest.approx(8e7 / (100e9 * 0.5) * 1e3 + 0.11)
    d = estimate_latency(_analysis(10**9, 10, 0, 10, cls="dwconv"), dev, "int8", "full", eff)
    assert d.latency_ms == pytest.approx(2e9 / (20e12 * 0.25) * 1e3 + 0.11)


def test_unsupported_precision(tmp_path):
    with pytest.raises(UserInputError, match="no INT8 peak"):
        estimate_latency(_analysis(1, 1, 1, 1), load_device_profile("jetson-nano"), "int8")
    with pytest.raises(UserInputError, match="Unknown precision"):
        estimate_latency(_analysis(1, 1, 1, 1), _device(tmp_path), "fp8")


def test_fit_recovers_known_factors(tmp_path, monkeypatch):
    dev = _device(tmp_path)
    import profiles.calibration as cal

    monkeypatch.setattr(cal, "load_device_profile", lambda name: dev)
    truth = Efficiency(conv=0.4, dwconv=0.05, memory=0.7, launch_us=20, per_inference_us=300, source="truth")
    analyses, points = {}, []
    shapes = [(10**9, 10**5, 10**4, 10**5, "conv"), (10**8, 10**7, 10**3, 10**7, "conv"), (10**6, 10**4, 10, 10**4, "conv"),
              (10**8, 10**5, 10**3, 10**5, "dwconv"), (5 * 10**8, 10**6, 10**5, 10**6, "conv"),
              (10**7, 10**6, 10**2, 10**6, "dwconv"), (3 * 10**9, 10**6, 10**6, 10**6, "conv")]
    for i, (mac, inp, par, out, cls) in enumerate(shapes):
        name = f"m{i}"
        analyses[name] = _analysis(mac, inp, par, out, cls)
        ms = estimate_latency(analyses[name], dev, "fp16", "full", truth).latency_ms
        points.append(PublishedPoint("toy", "full", name, "fp16", 1, 8, ms, "calibration" if i < 6 else "test", "synthetic"))
    fit = fit_efficiency(points, analyses)
    assert fit.summary("calibration")["max_abs_rel_error"] < 1e-3
    assert fit.summary("test")["max_abs_rel_error"] < 1e-2  # held-out point predicted too
    assert fit.efficiency.conv == pytest.approx(0.4, rel=0.02)


def test_stored_calibration_is_used():
    eff = load_efficiency()
    assert "torch2trt" in eff.source
    assert 0 < eff.conv <= 1 and 0 < eff.memory <= 1
    pts = load_published()
    assert {p.split for p in pts} == {"calibration", "test"}
    assert all(p.source for p in pts)
    r18 = [p for p in pts if p.model == "resnet18"]
    assert {p.device for p in r18} == {"jetson-nano", "jetson-agx-xavier"} and all(p.split == "test" for p in r18)
