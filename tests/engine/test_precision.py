"""Device and AMP selection: bf16 on CPUs with native bf16 (fixtures of /proc/cpuinfo), else FP32; CUDA picks
bf16 where supported, else fp16."""
from pathlib import Path

import pytest
import torch

from compress.engine.precision import amp_dtype, autocast, resolve_device
from compress.errors import UserInputError

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


FIX = Path(__file__).parents[1] / "fixtures" / "cpuinfo"


@pytest.mark.parametrize("fixture,isa,auto", [("intel_avx2", "x86_64", None), ("amd_zen4", "x86_64", torch.bfloat16),
                                              ("intel_spr_amx", "x86_64", torch.bfloat16),
                                              ("arm_cortex_a57", "aarch64", None),
                                              ("arm_neoverse_v1", "aarch64", torch.bfloat16)])
def test_cpu_amp_auto_follows_native_bf16(monkeypatch, fixture, isa, auto):
    import compress.engine.precision as dev
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


def test_the_final_test_and_val_scores_are_full_precision_whatever_the_training_autocast(tmp_path, monkeypatch):
    """The checkpoint's recorded test OA is what its FP32 weights (and FP32 ONNX file) score: under bf16
    autocast the quick start's teacher scored 2 of 1,618 test images apart from its own FP32 file."""
    from typer.testing import CliRunner

    import compress.evaluation.classifier as classifier
    from compress.cli import app

    seen = []
    real = classifier.evaluate_classifier

    def spy(*args, amp=None, **kw):
        seen.append(amp)
        return real(*args, amp=amp, **kw)

    monkeypatch.setattr(classifier, "evaluate_classifier", spy)
    r = CliRunner().invoke(app, ["train", "--model", "cifar_resnet8", "--epochs", "2", "--amp", "bf16",
                                 "--batch-size", "256", "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert seen[:-2] and all(a is not None for a in seen[:-2])  # the epochs' validation: under autocast
    assert seen[-2:] == [None, None]  # test, then val, of the best checkpoint: full precision
