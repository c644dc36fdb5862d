"""What a resume restores besides the student and the optimizer: the method's own state, the gradient
scaler, the nested resume state with its types; and a checkpoint of another architecture is refused."""
from pathlib import Path

import pytest
import torch

import compress.engine.loop as loop
from compress.data import DataConfig, build_data
from compress.engine.stage import base_manifest
from compress.engine.state import load_state, save_state
from compress.errors import CheckpointError
from compress.methods import build_method
from compress.models import create_model
from tests.engine.resume_helpers import CFG


def _fit(run: Path, arch="cifar_resnet8", extra=None, stop=None, resume=False):
    data = build_data(DataConfig(image_size=8), seed=CFG.seed, run_dir=run, reuse_split=resume)
    torch.manual_seed(0)
    method = build_method("ce", create_model(arch, num_classes=10, in_chans=1), None, None, num_classes=10,
                          image_size=8, in_chans=1)
    if extra is not None:  # a method's own state that the optimizer does not train (e.g. a running statistic)
        method.register_buffer("statistic", torch.full((3,), extra))
    man = base_manifest(arch, data, role="student", method="ce", config={})
    loop.fit(method, data, CFG, run, man, resume=resume, stop_after_epochs=stop)
    return method


def test_the_methods_own_state_comes_back_on_resume(tmp_path):
    _fit(tmp_path / "r", extra=7.0, stop=1)
    assert load_state(tmp_path / "r" / "checkpoints" / "last")["method"]["statistic"].tolist() == [7.0] * 3
    resumed = _fit(tmp_path / "r", extra=-1.0, resume=True)
    assert resumed.statistic.tolist() == [7.0] * 3


def test_the_gradient_scaler_comes_back_on_resume(tmp_path, monkeypatch):
    """The scaler is enabled only for CUDA FP16; a CPU one stands in. Its scale doubles every step, so after
    the resumed run it must count the steps of all three epochs, not only the last two."""
    made, real = [], torch.amp.GradScaler

    def scaler(device, enabled=True):
        made.append(real("cpu", init_scale=1.0, growth_interval=1))
        return made[-1]

    monkeypatch.setattr(loop.torch.amp, "GradScaler", scaler)
    _fit(tmp_path / "r", stop=1)
    steps_per_epoch = int(round(torch.log2(torch.tensor(made[0].get_scale())).item()))
    assert steps_per_epoch > 0
    _fit(tmp_path / "r", resume=True)
    assert made[1].get_scale() == 2.0 ** (3 * steps_per_epoch)


def test_a_checkpoint_of_another_architecture_is_refused_on_resume(tmp_path):
    _fit(tmp_path / "r", stop=1)
    with pytest.raises(CheckpointError, match="does not match the student architecture; use a new --out"):
        _fit(tmp_path / "r", arch="cifar_resnet14", resume=True)  # only missing keys: resnet8's are a subset


def test_resume_state_keeps_nesting_types_and_tensors(tmp_path):
    state = {"epoch": 2, "betas": (0.9, 0.999), "groups": [{"lr": 0.1, "params": [0, 1]}],
             "nested": ((1, torch.arange(3)), [torch.ones(2, 2)]), 3: "int key", "none": None,
             "flags": {"a": True, "b": (torch.zeros(1),)}}
    save_state(tmp_path, state)
    back = load_state(tmp_path)
    assert back["betas"] == (0.9, 0.999) and isinstance(back["betas"], tuple)
    assert isinstance(back["nested"], tuple) and isinstance(back["nested"][0], tuple)
    assert isinstance(back["nested"][1], list) and torch.equal(back["nested"][1][0], torch.ones(2, 2))
    assert torch.equal(back["nested"][0][1], torch.arange(3)) and back[3] == "int key" and back["none"] is None
    assert back["groups"] == [{"lr": 0.1, "params": [0, 1]}] and isinstance(back["flags"]["b"], tuple)
    assert list(back) == list(state)


def test_a_checkpoint_without_the_methods_state_is_refused_on_resume(tmp_path):
    """The method gained a buffer the checkpoint does not hold: resuming must not silently keep a fresh one."""
    _fit(tmp_path / "r", stop=1)
    with pytest.raises(CheckpointError, match="does not hold this method's state.*use a new --out"):
        _fit(tmp_path / "r", extra=-1.0, resume=True)
