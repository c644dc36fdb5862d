"""The CUDA branches of the engine (run by ``bench/gpu_check.py`` on a lent GPU; skipped elsewhere):
bf16 autocast by default, fp16 with a GradScaler, channels_last, torch.compile, fused optimizers,
cudnn.benchmark, pinned memory with persistent workers, and the pixel cache on the GPU."""
import numpy as np
import pytest
import torch

from compress.data import DataConfig, build_data
from compress.engine.train_config import TrainConfig
from compress.engine.precision import amp_dtype, channels_last
from compress.engine.epoch import build_loader
from compress.engine.loop import fit
from compress.engine.optim import build_optimizer
from compress.engine.stage import base_manifest
from compress.engine.state import load_state
from compress.methods import build_method
from compress.models import create_model

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
GPU = torch.device("cuda")


def _method(data, name="ce", teacher=None):
    torch.manual_seed(0)
    student = create_model("cifar_resnet8", num_classes=10, in_chans=1)
    return build_method(name, student, teacher, None, num_classes=10, image_size=data.image_size, in_chans=1)


def _fit(tmp_path, name="ce", **cfg):
    data = build_data(DataConfig(image_size=16), seed=0, run_dir=tmp_path)
    teacher = create_model("cifar_resnet8", num_classes=10, in_chans=1).eval() if name == "kd" else None
    method = _method(data, name, teacher)
    man = base_manifest("cifar_resnet8", data, role="student", method=name, config={})
    train = TrainConfig(epochs=1, batch_size=128, lr=0.05, device="cuda", **cfg)
    return method, fit(method, data, train, tmp_path, man)


def test_auto_precision_is_bf16_and_a_kd_run_trains_in_it(tmp_path):
    assert amp_dtype("auto", GPU) == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    method, res = _fit(tmp_path, "kd")
    assert np.isfinite(res.history[-1]["train_loss"]) and res.test["oa"] > 0.1
    assert torch.backends.cudnn.benchmark  # fixed input sizes: the engine asks cuDNN to pick kernels once


def test_fp16_trains_with_a_grad_scaler_and_saves_its_state(tmp_path):
    _, res = _fit(tmp_path, amp="fp16")
    state = load_state(tmp_path / "checkpoints" / "last")
    assert state["scaler"] is not None and state["scaler"]["scale"] > 0
    assert np.isfinite(res.history[-1]["train_loss"])


def test_conv_nets_train_channels_last_on_cuda(tmp_path):
    model = create_model("cifar_resnet8", num_classes=10, in_chans=1)
    assert channels_last("auto", GPU, torch.bfloat16, model)
    method, _ = _fit(tmp_path)
    conv = next(m for m in method.student.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_compiled_student_and_teacher_train(tmp_path):
    _, res = _fit(tmp_path, "kd", compile=True)
    assert np.isfinite(res.history[-1]["train_loss"])


def test_optimizers_are_fused_on_cuda():
    params = [torch.nn.Parameter(torch.zeros(3, 3, device=GPU))]
    for opt in ("sgd", "adamw"):
        assert build_optimizer(params, TrainConfig(optimizer=opt, lr=0.1), GPU).defaults["fused"] is True


def test_the_loader_path_pins_memory_and_keeps_its_workers(tmp_path):
    data = build_data(DataConfig(image_size=16), seed=0)
    loader = build_loader(_method(data), data, TrainConfig(batch_size=64, data_path="loader"), 2, GPU)
    assert loader.pin_memory and loader.persistent_workers and loader.num_workers == 2
    loader.batch_sampler.set_epoch(0)
    x, _ = next(iter(loader))
    assert x.is_pinned()


def test_the_cache_lives_on_the_gpu_and_makes_the_cpu_paths_batches(tmp_path):
    data = build_data(DataConfig(image_size=16), seed=0)
    loader = build_loader(_method(data), data, TrainConfig(batch_size=64), 0, GPU)
    assert loader.assembler.cache.device.type == "cuda"
    loader.batch_sampler.set_epoch(3)
    keys = next(iter(loader.batch_sampler))
    x, y = next(iter(loader))
    data.train.set_epoch(3)
    expected = torch.stack([data.train[k][0] for k in keys])
    assert x.device.type == "cuda" and y.device.type == "cuda"
    # bilinear resampling on the GPU rounds differently from the CPU's kernel
    torch.testing.assert_close(x.cpu(), expected, rtol=0, atol=1e-4)
    assert y.cpu().tolist() == [data.train[k][1] for k in keys]
