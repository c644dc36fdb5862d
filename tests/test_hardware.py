"""CPU-feature detection from /proc/cpuinfo fixtures, and the choices made from it (INT8 reduce_range)."""
from pathlib import Path

import pytest

from compress.hardware import cpu_info, parse_cpuinfo

FIX = Path(__file__).parent / "fixtures" / "cpuinfo"


def _cpu(name: str, isa: str):
    return parse_cpuinfo((FIX / f"{name}.txt").read_text(), isa=isa)


@pytest.mark.parametrize("name,isa,int8_dot,bf16,amx,simd", [
    ("intel_avx2", "x86_64", False, False, False, "AVX2"),
    ("intel_spr_amx", "x86_64", True, True, True, "AVX-512"),
    ("amd_zen4", "x86_64", True, True, False, "AVX-512"),
    ("arm_neoverse_v1", "aarch64", True, True, False, "SVE"),
    ("arm_cortex_a57", "aarch64", False, False, False, "NEON"),
])
def test_features(name, isa, int8_dot, bf16, amx, simd):
    c = _cpu(name, isa)
    assert (c.int8_dot, c.native_bf16, c.amx, c.simd) == (int8_dot, bf16, amx, simd)


def test_model_cores_and_clock():
    c = _cpu("intel_avx2", "x86_64")
    assert c.model.startswith("Intel(R) Xeon(R) CPU E5-2680") and c.cores == 2 and c.mhz == pytest.approx(2399.998)
    assert "avx2" in c.describe() and "no VNNI" not in c.describe()
    assert "no VNNI/BF16/AMX flags" in parse_cpuinfo("", isa="x86_64", cores=1).describe()


@pytest.mark.parametrize("name,isa,reduce", [("intel_avx2", "x86_64", True), ("amd_zen4", "x86_64", False),
                                             ("intel_spr_amx", "x86_64", False), ("arm_cortex_a57", "aarch64", False)])
def test_int8_reduce_range_follows_the_cpu(monkeypatch, name, isa, reduce):
    import compress.hardware as hw
    from export.int8 import cpu_flavour

    monkeypatch.setattr(hw, "cpu_info", lambda: _cpu(name, isa))
    assert cpu_flavour().reduce_range is reduce
    assert cpu_flavour(reduce_range=not reduce).reduce_range is (not reduce)


def test_this_machine_is_readable():
    c = cpu_info()
    assert c.cores >= 1 and c.model


@pytest.mark.parametrize("name,isa,saturates", [("intel_avx2", "x86_64", True), ("amd_zen4", "x86_64", False),
                                                ("intel_spr_amx", "x86_64", False),
                                                ("arm_cortex_a57", "aarch64", False),
                                                ("arm_neoverse_v1", "aarch64", False)])
def test_tensorrt_files_are_scored_as_written_where_onnxruntimes_int8_kernels_saturate(monkeypatch, name, isa,
                                                                                      saturates):
    import compress.hardware as hw
    from export.int8 import scored_as_written

    monkeypatch.setattr(hw, "cpu_info", lambda: _cpu(name, isa))
    assert _cpu(name, isa).int8_saturates is saturates
    assert scored_as_written("trt") is saturates
    assert scored_as_written("cpu") is False and scored_as_written(None) is False  # the CPU's own file: as deployed
