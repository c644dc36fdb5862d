"""Divergence: the rules on their own, and a run whose loss explodes stopping with the best checkpoint kept."""
import math

import pytest
import torch
import torch.nn.functional as F

from compress.data import DataConfig, build_data
from compress.engine.train_config import TrainConfig
from compress.engine.divergence import DivergenceMonitor, TrainingDiverged, monitored_loss
from compress.engine.loop import fit
from compress.engine.stage import base_manifest
from compress.methods.base import Method, StepOutput
from compress.models import create_model


def test_rules():
    m = DivergenceMonitor(classes=10)
    assert m.check(1, 2.3, 0.40) is None and m.check(2, 1.9, 0.55) is None
    assert "rose from 2.3 (epoch 1) to 4.7" in m.check(3, 4.7, 0.5)
    m = DivergenceMonitor(classes=10)
    m.check(1, 2.3, 0.45)
    assert "collapsed to 12.00 % (chance 10.00 %)" in m.check(2, 2.2, 0.12)
    slow = DivergenceMonitor(classes=10)  # a slow start near chance is not a collapse
    assert slow.check(1, 2.3, 0.11) is None and slow.check(2, 2.2, 0.10) is None
    assert "nan" in DivergenceMonitor(classes=2).check(1, math.nan, None)


def test_the_rise_rule_watches_the_ce_term_so_a_method_ramp_is_not_a_divergence():
    # DKD at epoch 6 of its 20-epoch warm-up: the total grew 2.4x while CE fell
    assert monitored_loss({"train_loss": 11.32, "train_ce": 1.1, "train_dkd": 10.2}) == 1.1
    assert monitored_loss({"train_loss": 3.0}) == 3.0  # no CE term (metric learning): the total
    assert math.isnan(monitored_loss({"train_loss": math.nan, "train_ce": 1.0}))  # a NaN total always counts
    m = DivergenceMonitor(classes=10)
    assert m.check(1, monitored_loss({"train_loss": 4.77, "train_ce": 2.2}), None) is None
    assert m.check(6, monitored_loss({"train_loss": 11.32, "train_ce": 1.1}), None) is None


def test_a_drop_within_the_noise_of_a_small_val_split_is_not_a_collapse():
    small = DivergenceMonitor(classes=10, val_images=20)  # 8/20 → 3/20 early in warm-up: noise
    assert small.check(1, 2.3, 0.40) is None and small.check(2, 2.2, 0.15) is None
    real = DivergenceMonitor(classes=10, val_images=20)  # 18/20 → 2/20 is not
    real.check(1, 2.3, 0.90)
    assert "collapsed to 10.00 %" in real.check(2, 2.2, 0.10)
    large = DivergenceMonitor(classes=10, val_images=2000)
    large.check(1, 2.3, 0.40)
    assert "collapsed to 15.00 %" in large.check(2, 2.2, 0.15)


def test_a_validation_collapse_the_training_accuracy_does_not_share_is_not_a_divergence():
    # PSKD from scratch, AID part 1 at 10 %: 31 validation images, val 54.8 % → 9.7 %, training accuracy 46.9 %
    wobble = DivergenceMonitor(classes=10, val_images=31)
    assert wobble.check(30, 1.26, 0.548, train_acc=0.473) is None
    assert wobble.check(33, 1.46, 0.097, train_acc=0.469) is None
    broken = DivergenceMonitor(classes=10, val_images=31)  # the same fall with the training accuracy gone too
    broken.check(30, 1.26, 0.548, train_acc=0.473)
    assert "collapsed to 9.70 %" in broken.check(33, 1.46, 0.097, train_acc=0.21)
    silent = DivergenceMonitor(classes=10, val_images=31)  # a method that reports no training accuracy
    silent.check(30, 1.26, 0.548)
    assert "collapsed to 9.70 %" in silent.check(33, 1.46, 0.097)


class EvalWobble(Method):
    """Plain CE; the validation score it reports drops to chance in epoch 2 while training goes on normally."""

    def training_step(self, images, targets):
        logits = self.student(images)
        return StepOutput({"ce": F.cross_entropy(logits, targets)}, logits, targets)

    def evaluate(self, dataset, class_names, device, amp=None):
        score, metrics, raw = super().evaluate(dataset, class_names, device, amp)
        return (0.05 if self.epoch == 1 else score), metrics, raw


def test_a_run_whose_training_holds_goes_on_through_a_validation_wobble(tmp_path, trained):
    data, model, man = _copy(trained)
    cfg = TrainConfig(epochs=3, batch_size=128, lr=0.01, warmup_epochs=0, device="cpu")
    res = fit(EvalWobble(model, num_classes=10, image_size=8, in_chans=1), data, cfg, tmp_path / "w", man)
    rows = (tmp_path / "w" / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 4 and res.best_epoch != 2  # all three epochs ran; the wobble was never kept


class Exploding(Method):
    """CE scaled by 10^epoch: the loss of epoch 2 is ten times epoch 1's."""

    def training_step(self, images, targets):
        logits = self.student(images)
        return StepOutput({"ce": F.cross_entropy(logits, targets) * 10.0 ** self.epoch}, logits, targets)


def test_exploding_loss_stops_after_the_epoch_and_keeps_the_best(tmp_path):
    data = build_data(DataConfig(image_size=8), run_dir=tmp_path)
    torch.manual_seed(0)
    method = Exploding(create_model("cifar_resnet8", 10, 1), num_classes=10, image_size=8, in_chans=1)
    man = base_manifest("cifar_resnet8", data, role="student", method="x", config={})
    cfg = TrainConfig(epochs=4, batch_size=256, lr=0.01, device="cpu")
    with pytest.raises(TrainingDiverged, match=r"rose from .* \(epoch 2\).*best checkpoint so far is kept"):
        fit(method, data, cfg, tmp_path, man)
    assert (tmp_path / "checkpoints" / "best" / "model.safetensors").is_file()
    assert len((tmp_path / "history.csv").read_text().strip().splitlines()) == 3  # header + epochs 1, 2


def test_a_collapse_from_the_starting_score_counts():
    m = DivergenceMonitor(classes=30)
    m.seed(0.85)  # fine-tuning a model that already scores 85 %
    assert "collapsed to 4.00 % (chance 3.33 %) in epoch 1 after reaching 85.00 %" in m.check(1, 7.2, 0.04)
    fresh = DivergenceMonitor(classes=30)
    fresh.seed(None)
    assert fresh.check(1, 7.2, 0.04) is None


class Saboteur(Method):
    """Pushes every image to class 0: from a trained model, validation OA falls to about chance in one epoch."""

    def training_step(self, images, targets):
        logits = self.student(images)
        return StepOutput({"ce": F.cross_entropy(logits, torch.zeros_like(targets))}, logits, targets)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("trained")
    data = build_data(DataConfig(image_size=8), run_dir=tmp_path / "t")
    torch.manual_seed(0)
    model = create_model("cifar_resnet8", 10, 1)
    man = base_manifest("cifar_resnet8", data, role="teacher", method="ce", config={})
    from compress.methods import build_method

    fit(build_method("ce", model, None, None, num_classes=10, image_size=8, in_chans=1), data,
        TrainConfig(epochs=3, batch_size=128, lr=0.05, device="cpu"), tmp_path / "t", man)
    return data, model.state_dict(), man


def _copy(trained):
    data, state, man = trained
    model = create_model("cifar_resnet8", 10, 1)
    model.load_state_dict(state)
    return data, model, man


def test_fine_tuning_that_collapses_stops_in_epoch_one_and_keeps_the_start(tmp_path, trained):
    data, model, man = _copy(trained)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(epochs=3, batch_size=128, lr=0.05, warmup_epochs=0, device="cpu")
    with pytest.raises(TrainingDiverged, match=r"collapsed to .* in epoch 1 after reaching .*best checkpoint"):
        fit(Saboteur(model, num_classes=10, image_size=8, in_chans=1), data, cfg, tmp_path / "ft", man, eval_start=True)
    from compress.checkpoint import read_manifest, read_weights

    best = tmp_path / "ft" / "checkpoints" / "best"
    assert read_manifest(best).epoch == 0
    assert all(torch.equal(read_weights(best)[k], start[k]) for k in start)


def test_without_a_starting_score_the_first_epoch_is_only_a_baseline(tmp_path, trained):
    data, model, man = _copy(trained)
    cfg = TrainConfig(epochs=1, batch_size=128, lr=0.05, warmup_epochs=0, device="cpu")
    res = fit(Saboteur(model, num_classes=10, image_size=8, in_chans=1), data, cfg, tmp_path / "ft", man)
    assert res.best_epoch == 1 and res.test["oa"] < 0.2


def test_a_loss_that_doubles_near_zero_is_noise_not_divergence():
    m = DivergenceMonitor(classes=10)  # QAD of a fitted student: CE 0.005 → 0.016 on one thread
    assert m.check(1, 0.005, 0.97) is None and m.check(2, 0.0155, 0.97) is None
    assert "rose from 0.005" in m.check(3, 0.2, 0.97)
