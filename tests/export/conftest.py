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
