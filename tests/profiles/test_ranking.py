"""Kendall's τ-b by hand, and the per-table ranking rows the calibration report prints."""
import math
from dataclasses import dataclass

import pytest

from profiles.estimator.ranking import kendall_tau_b, rank_markdown, rank_rows


def test_kendall_tau_b_by_hand():
    assert kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)  # 5 concordant, 1 discordant
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]) == -1.0
    # one tie in x: τ-b = (2 − 0) / √((3 − 1)(3 − 0))
    assert kendall_tau_b([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    assert math.isnan(kendall_tau_b([1, 1], [2, 3]))
    with pytest.raises(ValueError, match="3 values against 2"):
        kendall_tau_b([1, 2, 3], [1, 2])


@dataclass(frozen=True)
class Point:
    model: str
    latency_ms: float
    device: str = "jetson-orin-nano-8gb"
    power_mode: str = "15W"
    precision: str = "fp16"
    input_size: int = 224
    batch: int = 1
    timing: str = "gpu_compute"
    tensorrt: str = "8.6.2"


@dataclass(frozen=True)
class Err:
    point: Point
    predicted_ms: float


def test_rank_rows_group_by_table_and_name_the_swapped_pairs():
    macs = {"resnet18": 1.8e9, "mnv3s": 0.06e9, "lite0": 0.4e9, "resnet50": 4.1e9}
    errs = [Err(Point("resnet18", 2.0), 1.5), Err(Point("mnv3s", 1.56), 1.7), Err(Point("lite0", 2.4), 2.2),
            Err(Point("resnet50", 4.0), 3.9),
            Err(Point("resnet18", 1.0, device="jetson-agx-orin-64gb", power_mode="MAXN"), 1.0)]  # alone: no row
    rows = rank_rows(errs, lambda p: macs[p.model], min_models=3)
    assert len(rows) == 1 and rows[0].models == 4 and rows[0].group.startswith("jetson-orin-nano-8gb 15W fp16 224px")
    # measured order mnv3s < resnet18 < lite0 < resnet50; estimated resnet18 < mnv3s: one pair of six swapped
    assert rows[0].tau_estimate == pytest.approx(4 / 6) and rows[0].swapped == (("mnv3s", "resnet18"),)
    assert rows[0].tau_macs == pytest.approx(4 / 6)  # MACs put lite0 below resnet18
    md = rank_markdown(rows, "table")
    assert md[2] == ("| jetson-orin-nano-8gb 15W fp16 224px b1 gpu_compute, TensorRT 8.6.2 | 4 | 0.67 | 0.67 | "
                     "mnv3s < resnet18 |")
