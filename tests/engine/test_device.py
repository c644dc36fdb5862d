"""Device and AMP selection: bf16 on CPUs with native bf16 (fixtures of /proc/cpuinfo), else FP32; CUDA picks
bf16 where supported, else fp16."""
from pathlib import Path

import pytest
import torch

from compress.engine.device import amp_dtype, autocast, resolve_device
from compress.errors import UserInputError

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


FIX = Path(__file__).parents[1] / "fixtures" / "cpuinfo"


@pytest.mark.parametrize("fixture,isa,auto", [("intel_avx2", "x86_64", None), ("amd_zen4", "x86_64", torch.bfloat16),
                                              ("intel_spr_amx", "x86_64", torch.bfloat16),
                                              ("arm_cortex_a57", "aarch64", None),
                                              ("arm_neoverse_v1", "aarch64", torch.bfloat16)])
def test_cpu_amp_auto_follows_native_bf16(monkeypatch, fixture, isa, auto):
    import compress.engine.device as dev
    from compress.hardware import parse_cpuinfo

    monkeypatch.setattr(dev, "cpu_info", lambda: parse_cpuinfo((FIX / f"{fixture}.txt").read_text(), isa=isa))
    assert amp_dtype("auto", CPU) is auto and amp_dtype("off", CPU) is None
    assert amp_dtype("bf16", CPU) is torch.bfloat16  # asked for explicitly: honoured
    with pytest.raises(UserInputError, match="amp 'fp16' needs a CUDA device"):
        amp_dtype("fp16", CPU)


@pytest.mark.parametrize("bf16_ok,amp,expected", [
    (True, "auto", torch.bfloat16), (False, "auto", torch.float16), (True, "fp16", torch.float16),
    (False, "bf16", torch.bfloat16), (True, "off", None),
])
def test_cuda_choice(monkeypatch, bf16_ok, amp, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_ok)
    assert amp_dtype(amp, CUDA) is expected


def test_autocast_is_a_no_op_without_dtype_and_cpu_resolution():
    x = torch.ones(2, 2)
    with autocast(CPU, None):
        assert (x @ x).dtype == torch.float32
    assert resolve_device("cpu") == CPU
    with pytest.raises(UserInputError, match="--device must be auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")
