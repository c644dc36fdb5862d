"""A tiny real checkpoint (cifar-resnet8 on the embedded 8x8 digits, resized to 16 px) for export tests."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.checkpoint import Manifest, save_checkpoint


@pytest.fixture(scope="session")
def digits_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    from compress.models import create_model

    model = create_model("cifar-resnet8", num_classes=10, in_chans=1).eval()
    man = Manifest(architecture="cifar-resnet8", num_classes=10, in_chans=1, image_size=16, mean=(0.5,),
                   std=(0.25,), class_names=tuple(str(i) for i in range(10)))
    path = tmp_path_factory.mktemp("ckpt") / "best"
    save_checkpoint(path, model, man)
    return path


@pytest.fixture(scope="session")
def one_epoch_run(tmp_path_factory):
    """A cifar_resnet8 run trained by ``compress train`` for one epoch on the digits at 16 px (its folder)."""
    from typer.testing import CliRunner

    from compress.cli import app

    run = tmp_path_factory.mktemp("one_epoch") / "t"
    r = CliRunner().invoke(app, ["train", "--model", "cifar_resnet8", "--image-size", "16", "--epochs", "1",
                                 "--batch-size", "256", "--out", str(run)])
    assert r.exit_code == 0, r.output
    return run


@pytest.fixture(scope="session")
def digits_samples(digits_ckpt):
    from compress.data.samples import load_samples
    from compress.checkpoint import read_manifest

    return load_samples(digits_ckpt, read_manifest(digits_ckpt), "test", 64)


def _tiny_cnn(num_classes: int = 4, in_chans: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(in_chans, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, num_classes)).eval()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def tiny_cnn():
    """Factory for a 1-conv classifier (``tiny_cnn(num_classes, in_chans)``)."""
    return _tiny_cnn


@pytest.fixture(scope="session")
def outlier_ckpt(tmp_path_factory):
    """A TRAINED cifar-resnet8 (digits, 16 px, ≈97 % test OA) with one activation channel that breaks INT8.

    Inside ``layer2.0``, channel c of ``bn1`` is scaled by 1000 and the input weights of ``conv2`` for that
    channel by 1/1000: ReLU is positively homogeneous, so the float model computes the same logits (to
    float rounding), but the per-tensor activation scale of conv2's input grows 1000× and every other
    channel loses its INT8 resolution — the outlier that cross-layer equalisation removes. Quantising every
    layer collapses validation accuracy; keeping ``layer2.0/conv2`` in float restores it, so the budget
    fallback has real work to do.
    """
    from compress.data import DataConfig, build_data
    from compress.engine.train_config import TrainConfig
    from compress.engine.stage import StageSpec, run_stage
    from compress.models import create_model

    run = tmp_path_factory.mktemp("trained")
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = build_data(DataConfig(image_size=16), seed=0, run_dir=run)
        cfg = TrainConfig(epochs=3, batch_size=64, lr=0.1, seed=0, device="cpu")
        run_stage(StageSpec(role="student", arch="cifar_resnet8", method="ce", train=cfg, run_dir=run, config={}),
                  data)
    finally:
        torch.set_num_threads(prev)
    from compress.checkpoint import read_manifest, read_weights

    best = run / "checkpoints" / "best"
    model = create_model("cifar_resnet8", num_classes=10, in_chans=1)
    model.load_state_dict(read_weights(best))
    with torch.no_grad():
        block = model.layer2[0]
        c = int(block.bn1.weight.argmax())
        block.bn1.weight[c] *= 1000.0
        block.bn1.bias[c] *= 1000.0
        block.conv2.weight[:, c] /= 1000.0
    path = run / "checkpoints" / "outlier"
    save_checkpoint(path, model.eval(), read_manifest(best))
    return path
