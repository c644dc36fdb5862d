"""The automatic rate per method: measured gradient ratio to CE, golden on a loss that is c × CE."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from compress.engine.train_config import TrainConfig
from compress.engine.lr_scale import MIN_SCALE, RECORD, measure_lr_scale, stage_lr_scale
from compress.methods import build_method
from compress.methods.base import Method, StepOutput
from compress.models import create_model


class ScaledCE(Method):
    """A method whose loss is exactly ``c`` × CE: its gradient is ``c`` times CE's."""

    def __init__(self, student, c, bn=False):
        super().__init__(student, num_classes=3, image_size=4, in_chans=1)
        self.c = c

    def training_step(self, images, targets):
        logits = self.student(images)
        return StepOutput({"ce": self.c * F.cross_entropy(logits, targets)}, logits, targets)


class Labelled(TensorDataset):
    """A training split as the engine sees it: items and a ``labels`` list for the methods' samplers."""

    def __init__(self, x, y):
        super().__init__(x, y)
        self.labels = y.tolist()


def _data(n=40, size=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Labelled(torch.randn(n, 1, size, size, generator=g), torch.arange(n) % 3)


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(16, 3))


@pytest.mark.parametrize("c,scale", [(4.0, 0.25), (2.5, 0.4), (1.0, 1.0), (0.5, 1.0), (100.0, MIN_SCALE)])
def test_a_loss_c_times_ce_trains_at_1_over_c_of_the_rate_within_its_limits(c, scale):
    s = measure_lr_scale(ScaledCE(_tiny(), c), _data(), seed=0)
    assert s.ratios == pytest.approx((c,) * 4, rel=1e-4) and s.scale == pytest.approx(scale, rel=1e-4)
    assert f"gradient {c:.2f}× CE's on 4 batches of 32" == s.why


def test_the_measurement_leaves_weights_and_batchnorm_statistics_as_they_were():
    m = ScaledCE(_tiny(), 3.0)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    measure_lr_scale(m, _data(), seed=0)
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in m.parameters())


def test_real_methods_get_a_finite_rate_and_pskd_a_smaller_one_than_kd():
    def method(name):
        torch.manual_seed(0)
        s, t = create_model("cifar_resnet8", 3, 1), create_model("cifar_resnet14", 3, 1)
        return build_method(name, s, t, {}, num_classes=3, image_size=16, in_chans=1)

    data = _data(128, 16, seed=1)  # PSKD pairs every anchor: 4 batches of 32 take 128 images
    kd, pskd = (measure_lr_scale(method(n), data, seed=0) for n in ("kd", "pskd"))
    assert all(MIN_SCALE <= s.scale <= 1.0 and len(s.ratios) == 4 for s in (kd, pskd))
    assert pskd.scale < kd.scale  # PSKD's summed loss (Eq. 9) is steeper than KD's at α 0.5


def test_ce_a_given_rate_adamw_and_embeddings_keep_the_rate_and_a_resumed_stage_reads_its_record(tmp_path):
    m, data, sgd = ScaledCE(_tiny(), 4.0), _data(), TrainConfig()
    assert stage_lr_scale(m, "ce", data, sgd, tmp_path, "classification").scale == 1.0
    assert stage_lr_scale(m, "kd", data, replace(sgd, lr=0.1), tmp_path, "classification").scale == 1.0
    assert stage_lr_scale(m, "kd", data, replace(sgd, optimizer="adamw"), tmp_path, "classification").scale == 1.0
    assert stage_lr_scale(m, "kd", data, sgd, tmp_path, "embedding").scale == 1.0
    assert not (tmp_path / RECORD).exists()
    first = stage_lr_scale(m, "kd", data, sgd, tmp_path, "classification")
    assert first.scale == pytest.approx(0.25, rel=1e-4) and (tmp_path / RECORD).is_file()
    m.c = 1.0  # the weights have moved on by the time a stage resumes: the recorded rate holds
    assert stage_lr_scale(m, "kd", data, sgd, tmp_path, "classification") == first
