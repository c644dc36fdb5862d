"""Jetson detection, nvpmodel and tegrastats parsing on recorded sample outputs."""
import pytest

from compress.errors import DeviceError
from runtime.jetson import (detect_jetson, parse_l4t_release, parse_nvpmodel_query, parse_tegrastats,
                            parse_tegrastats_line, summarize_power, tegrastats_command)

# recorded formats: AGX Orin (JetPack 5), Jetson Nano (JetPack 4), Orin Nano (JetPack 6, GR3D without clock)
ORIN = ("04-13-2023 10:21:32 RAM 2904/30536MB (lfb 6301x4MB) SWAP 0/15268MB (cached 0MB) CPU [1%@729,0%@729,"
        "off,off] EMC_FREQ 0%@2133 GR3D_FREQ 45%@[1300,1300] VIC_FREQ 729 APE 174 CPU@43.593C tj@43.593C "
        "VDD_GPU_SOC 2389mW/2389mW VDD_CPU_CV 398mW/398mW VIN_SYS_5V0 3217mW/3217mW VDDQ_VDD2_1V8AO 506mW/506mW")
NANO = ("RAM 1615/3956MB (lfb 146x4MB) SWAP 0/1978MB (cached 0MB) IRAM 0/252kB(lfb 252kB) CPU [3%@1479,2%@1479,"
        "0%@1479,0%@1479] EMC_FREQ 0%@1600 GR3D_FREQ 99%@921 APE 25 PLL@23.5C CPU@26C GPU@24.5C "
        "POM_5V_IN 4150/3150 POM_5V_GPU 1900/1000 POM_5V_CPU 369/369")
ORIN_NANO = ("RAM 2100/7620MB (lfb 2x4MB) CPU [2%@729,1%@729] GR3D_FREQ 0% cpu@45.2C VDD_IN 5000mW/4900mW "
             "VDD_CPU_GPU_CV 600mW/600mW VDD_SOC 1400mW/1400mW")


def test_parse_lines():
    o = parse_tegrastats_line(ORIN)
    assert o.rails_mw == {"VDD_GPU_SOC": 2389, "VDD_CPU_CV": 398, "VIN_SYS_5V0": 3217, "VDDQ_VDD2_1V8AO": 506}
    assert (o.gpu_load_pct, o.gpu_mhz, o.emc_mhz) == (45, 1300, 2133)
    assert o.total_mw() == (2389 + 398 + 3217 + 506, "sum of VDDQ_VDD2_1V8AO+VDD_CPU_CV+VDD_GPU_SOC+VIN_SYS_5V0")
    n = parse_tegrastats_line(NANO)
    assert n.rails_mw["POM_5V_GPU"] == 1900 and (n.gpu_load_pct, n.gpu_mhz) == (99, 921)
    assert n.total_mw() == (4150.0, "POM_5V_IN")
    on = parse_tegrastats_line(ORIN_NANO)
    assert on.gpu_load_pct == 0 and on.gpu_mhz is None and on.total_mw() == (5000.0, "VDD_IN")
    assert parse_tegrastats_line("RAM 1/2MB CPU [1%@100]") is None


def test_energy_per_inference():
    samples = parse_tegrastats("\n".join([NANO, NANO.replace("POM_5V_IN 4150", "POM_5V_IN 5150")]))
    idle = parse_tegrastats(NANO.replace("POM_5V_IN 4150", "POM_5V_IN 1150"))
    p = summarize_power(samples, latency_ms=20.0, batch=4, idle=idle)
    # mean 4650 mW x 20 ms / 4 images = 23.25 mJ; above idle (4650-1150) x 20 / 4 = 17.5 mJ
    assert p.mean_total_mw == 4650 and p.energy_per_inference_mj == pytest.approx(23.25)
    assert p.energy_above_idle_mj == pytest.approx(17.5) and p.total_from == "POM_5V_IN"
    assert p.mean_gpu_load_pct == 99 and p.max_gpu_mhz == 921
    with pytest.raises(DeviceError, match="no tegrastats samples"):
        summarize_power([], 1.0)


def test_detect_from_device_tree(tmp_path):
    from tests.conftest import fake_jetson

    info = detect_jetson(fake_jetson(tmp_path))
    assert info.l4t_release == "35.3.1" and info.model == "NVIDIA Jetson AGX Orin Developer Kit"
    assert info.memory_gb == pytest.approx(31268916 / 1024 ** 2)


def test_not_a_jetson(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/meminfo").write_text("MemTotal: 1000 kB\n")
    assert detect_jetson(tmp_path) is None
    assert detect_jetson() is None or detect_jetson().model  # this machine: whatever it is, no crash


def test_nvpmodel_and_commands():
    assert parse_nvpmodel_query("NV Power Mode: MODE_15W\n1\n") == {"name": "MODE_15W", "id": 1}
    assert parse_nvpmodel_query("NVPM WARN: ...\nNV Power Mode: MAXN\n0\n") == {"name": "MAXN", "id": 0}
    assert parse_l4t_release("garbage") is None
    assert tegrastats_command(50) == ["tegrastats", "--interval", "50"]
