"""Device and AMP selection: CPU trains in FP32; CUDA picks bf16 where supported, else fp16."""
import pytest
import torch

from compress.engine.device import amp_dtype, autocast, resolve_device
from compress.errors import UserInputError

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_cpu_is_full_precision_and_refuses_explicit_amp():
    assert amp_dtype("auto", CPU) is None and amp_dtype("off", CPU) is None
    for amp in ("bf16", "fp16"):
        with pytest.raises(UserInputError, match=f"amp '{amp}' needs a CUDA device"):
            amp_dtype(amp, CPU)


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
