import pytest
from torch import nn

from compress.errors import UserInputError
from profiles.estimator.bands import (BANDS_FILE, MIN_POINTS, bands_csv, calibration_module, error_band, load_module_bands,
                            module_bands, ratio_band)
from profiles.device import load_device_profile
from profiles.estimator.estimate import estimate_latency, load_efficiency
from profiles.counting.torch_count import analyze_torch


def test_ratio_band_takes_nearest_rank_percentiles():
    assert ratio_band([1.0, 0.5, 2.0, 1.0, 1.0]) == (0.5, 2.0)  # 10 % of 4 steps rounds to none
    ten = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
    assert ratio_band(ten) == (0.6, 1.4)
    assert ratio_band(ten, coverage=1.0) == (0.5, 1.5)
    with pytest.raises(UserInputError, match="at least one"):
        ratio_band([])


def test_module_bands_need_enough_points_and_map_devkits_to_their_module():
    pairs = [("a", r) for r in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5)] + [("b", 2.0)] * (MIN_POINTS - 1)
    assert module_bands(pairs) == {"a": (0.6, 1.4, 11)}
    assert calibration_module("jetson-orin-nano-super-devkit") == "jetson-orin-nano-8gb"
    assert calibration_module("jetson-tx2") == "jetson-tx2"


def test_error_band_only_ever_widens_the_overall_band():
    bands = {"wide": (0.5, 2.0, 9), "narrow": (0.9, 1.1, 30), "low": (0.4, 0.8, 9)}
    assert error_band(0.7, 1.4, "wide", bands)[:2] == (0.5, 2.0)
    assert error_band(0.7, 1.4, "narrow", bands)[:2] == (0.7, 1.4)
    low, high, why = error_band(0.7, 1.4, "low", bands)
    assert (low, high) == (0.4, 1.4) and "9 published points at 0.40–0.80×" in why
    assert error_band(0.7, 1.4, "unknown", bands) == (0.7, 1.4, f"fewer than {MIN_POINTS} published points on "
                                                                 "this module: the all-modules band")


def test_bands_csv_round_trips(tmp_path):
    bands = {"jetson-x": (0.52, 0.79, 9), "jetson-y": (0.85, 1.7, 41)}
    path = tmp_path / "bands.csv"
    path.write_text(bands_csv(bands))
    assert load_module_bands(path) == bands
    bad = tmp_path / "bad.csv"
    bad.write_text("module,low\nx,oops\n")
    with pytest.raises(UserInputError, match="not a valid band table"):
        load_module_bands(bad)


def test_stored_estimates_print_their_modules_band():
    a = analyze_torch(nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3)), (1, 3, 64, 64))
    eff, bands = load_efficiency(), load_module_bands(BANDS_FILE)
    assert len(bands) >= 4  # one per module with enough published points
    nx = estimate_latency(a, load_device_profile("jetson-xavier-nx"), "fp16", detail=False)
    lo, hi, _ = bands["jetson-xavier-nx"]
    assert nx.low_ms == pytest.approx(nx.latency_ms * min(lo, eff.band_low))
    assert nx.high_ms == pytest.approx(nx.latency_ms * max(hi, eff.band_high))
    assert "jetson-xavier-nx held out" in nx.assumptions[1]
    # a profile without published points, and an explicit efficiency, keep the overall band
    for est in (estimate_latency(a, load_device_profile("jetson-orin-nx-8gb"), "fp16", detail=False),
                estimate_latency(a, load_device_profile("jetson-xavier-nx"), "fp16", efficiency=eff, detail=False)):
        assert est.low_ms == pytest.approx(est.latency_ms * eff.band_low)
        assert est.high_ms == pytest.approx(est.latency_ms * eff.band_high)
