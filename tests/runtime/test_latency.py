"""measure_latency with a tiny deterministic runner and a scripted clock."""
from collections import OrderedDict

import numpy as np
import pytest

import runtime.latency as lat
from compress.errors import UserInputError
from runtime.base import Runner, TensorSpec


class CountingRunner(Runner):
    backend = "fake"

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.syncs = 0

    def activate_impl(self):
        pass

    def deactivate_impl(self):
        pass

    def input_specs_impl(self):
        return [TensorSpec("x", (-1, 3), "float32")]

    def infer_impl(self, feeds):
        self.calls += 1
        return OrderedDict(y=feeds["x"].sum(1))

    def synchronize(self):
        self.syncs += 1

    def describe(self):
        return {**super().describe(), "precision": "fp32", "threads": 1, "device": "cpu"}


def test_stats_from_scripted_clock(monkeypatch):
    durations_ms = [1, 2, 3, 4, 10]
    ticks = []
    t = 0
    for d in durations_ms:
        ticks += [t, t + d * 1_000_000]
        t += 10**9
    it = iter(ticks)
    monkeypatch.setattr(lat.time, "perf_counter_ns", lambda: next(it))
    r = CountingRunner()
    s = lat.measure_latency(r, {"x": np.ones((4, 3), np.float32)}, warmup=3, iters=5)
    assert r.calls == 8 and r.syncs == 6 and not r.is_active  # warm-up + timed; sync after warm-up and each run
    assert s.mean_ms == pytest.approx(4.0) and s.p50_ms == pytest.approx(3.0)
    assert s.p90_ms == pytest.approx(np.percentile(durations_ms, 90)) and s.max_ms == 10 and s.min_ms == 1
    assert s.throughput_ips == pytest.approx(4 * 1000 / 4.0)  # batch 4 / 4 ms
    assert s.batch == 4 and s.h2d_included and s.kind == "measured"
    assert s.runner["backend"] == "fake" and s.runner["precision"] == "fp32" and s.runner["threads"] == 1
    assert "device_name" in s.runner


def test_active_runner_stays_active_and_bad_args():
    r = CountingRunner().activate()
    s = lat.measure_latency(r, {"x": np.ones((2, 3), np.float32)}, warmup=0, iters=3)
    assert r.is_active and s.iters == 3 and s.warmup == 0
    with pytest.raises(UserInputError, match="iters >= 1"):
        lat.measure_latency(r, {"x": np.ones((2, 3), np.float32)}, iters=0)
    with pytest.raises(UserInputError, match="inputs do not match"):
        lat.measure_latency(r, {"z": np.ones((2, 3), np.float32)}, warmup=1, iters=1)


def test_real_torch_runner_if_available():
    torch_runner = pytest.importorskip("runtime.torch_runner")
    import torch

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    s = lat.measure_latency(torch_runner.TorchRunner(model), {"input": np.zeros((2, 3, 2, 2), np.float32)}, 1, 3)
    assert s.runner["backend"] == "torch" and s.iters == 3 and s.mean_ms > 0
