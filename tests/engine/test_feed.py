"""--data-path: which path makes the batches, and that both paths train to the same weights."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from compress.data import DataConfig, build_data
from compress.engine.train_config import TrainConfig
from compress.engine.epoch import build_loader
from compress.engine.feed import CachedLoader, resolve_data_path
from compress.engine.stage import StageSpec, run_stage
from compress.errors import UserInputError
from compress.methods import build_method
from compress.models import create_model

CPU, GPU = torch.device("cpu"), torch.device("cuda")


def test_auto_caches_on_a_gpu_or_without_workers_and_loads_with_workers(tiny_folder):
    data = build_data(DataConfig(data=str(tiny_folder), train_ratio=0.5, image_size=8))
    assert resolve_data_path("auto", data, CPU, 0) == "cache"
    assert resolve_data_path("auto", data, CPU, 4) == "loader"
    assert resolve_data_path("auto", data, GPU, 4) == "cache"
    assert resolve_data_path("cache", data, CPU, 4) == "cache"
    assert resolve_data_path("loader", data, GPU, 0) == "loader"


def test_data_the_cache_cannot_hold_uses_the_loader_or_says_why(tiny_folder):
    data = build_data(DataConfig(data=str(tiny_folder), train_ratio=0.5, image_size=8))
    data.train.source.dtype = "uint16"
    assert resolve_data_path("auto", data, GPU, 0) == "loader"
    with pytest.raises(UserInputError, match="--data-path cache needs .* use --data-path loader"):
        resolve_data_path("cache", data, CPU, 0)


def test_a_wrong_data_path_is_refused():
    with pytest.raises(UserInputError, match="data_path must be auto, cache or loader, got 'gpu'"):
        TrainConfig(data_path="gpu")


def test_the_cache_path_serves_data_over_the_memory_limit_from_a_file_beside_it(tiny_folder):
    data = build_data(DataConfig(data=str(tiny_folder), train_ratio=0.5, image_size=8, cache=False))
    assert data.train.source.arrays is None
    method = build_method("ce", create_model("cifar_resnet8", 3, 3), None, None, num_classes=3, image_size=8,
                          in_chans=3)
    loader = build_loader(method, data, TrainConfig(batch_size=4, data_path="cache"), 0, CPU)
    assert isinstance(loader, CachedLoader)
    assert list((tiny_folder / ".compress-cache").glob("*.bin"))
    loader.batch_sampler.set_epoch(2)
    keys = next(iter(loader.batch_sampler))
    x, y = next(iter(loader))
    data.train.set_epoch(2)
    torch.testing.assert_close(x, torch.stack([data.train[k][0] for k in keys]), rtol=0, atol=1e-6)
    assert y.tolist() == [data.train[k][1] for k in keys]


@pytest.mark.parametrize("method", ["ce", "erkt"])
def test_both_paths_train_to_the_same_weights(tmp_path, method):
    data = build_data(DataConfig(image_size=12), seed=1)
    teacher = None
    if method == "erkt":
        torch.manual_seed(0)
        teacher = create_model("cifar_resnet8", 10, 1).eval()
    runs = {}
    for path in ("loader", "cache"):
        cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05, seed=1, device="cpu", amp="off", data_path=path)
        spec = StageSpec(role="student", arch="cifar_resnet8", method=method, train=cfg, run_dir=tmp_path / path,
                         config={}, workers=0)
        runs[path] = run_stage(spec, data, teacher=teacher)
    a = load_file(str(tmp_path / "loader" / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "cache" / "checkpoints" / "last" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    la = [r["train_loss"] for r in runs["loader"].fit.history]
    lb = [r["train_loss"] for r in runs["cache"].fit.history]
    np.testing.assert_allclose(la, lb, rtol=1e-5)
