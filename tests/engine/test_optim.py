import math

import pytest

from compress.engine.train_config import TrainConfig
from compress.engine.optim import lr_at
from compress.errors import UserInputError


def test_cosine_with_warmup_values():
    cfg = TrainConfig(epochs=10, lr=0.1, warmup_epochs=1, schedule="cosine")
    assert lr_at(cfg, 0, 10) == pytest.approx(0.01)  # (0+1)/(1·10)·0.1
    assert lr_at(cfg, 9, 10) == pytest.approx(0.1)
    # halfway through the cosine part (epoch 5.5 of 1..10): 0.5·0.1·(1+cos(π/2)) = 0.05
    assert lr_at(cfg, 55, 10) == pytest.approx(0.05)


def test_multistep_like_the_pskd_preset():
    cfg = TrainConfig(epochs=200, lr=0.1, schedule="multistep", milestones=(60, 120, 160), gamma=0.1, warmup_epochs=0)
    assert [lr_at(cfg, e * 5, 5) for e in (0, 59, 60, 120, 199)] == pytest.approx([0.1, 0.1, 0.01, 0.001, 1e-4])


def test_automatic_lr_scales_with_the_batch_and_the_initialisation():
    auto = TrainConfig(epochs=20, batch_size=128)
    assert (auto.lr, auto.warmup_epochs) == (None, None)
    assert auto.resolved(pretrained=False).lr == pytest.approx(0.1)  # 0.05 per 64 images
    assert auto.resolved(pretrained=True).lr == pytest.approx(0.02)  # 0.01 per 64 when fine-tuning
    assert TrainConfig(batch_size=32, optimizer="adamw").resolved(pretrained=True).lr == pytest.approx(1.5e-4)
    assert auto.resolved(pretrained=False).warmup_epochs == 1.0
    assert TrainConfig(epochs=3).resolved(pretrained=False).warmup_epochs == pytest.approx(0.3)
    given = TrainConfig(epochs=20, batch_size=128, lr=0.3, warmup_epochs=0)
    assert given.resolved(pretrained=True) == given  # explicit values are never rescaled


def test_bad_values():
    with pytest.raises(UserInputError, match="optimizer must be sgd or adamw"):
        TrainConfig(optimizer="adam")
    with pytest.raises(UserInputError, match="epochs must be"):
        TrainConfig(epochs=0)
    assert math.isclose(lr_at(TrainConfig(schedule="constant", lr=0.3), 1000, 10), 0.3)


def test_label_smoothing_flag_reaches_the_method(tmp_path):
    from compress.data import DataConfig, build_data
    from compress.engine.stage import StageSpec, run_stage

    data = build_data(DataConfig(image_size=8, val_fraction=0.0), run_dir=tmp_path)
    cfg = TrainConfig(epochs=1, batch_size=512, label_smoothing=0.2, device="cpu")
    captured = {}
    import compress.engine.stage as stage

    real = stage.fit
    stage.fit = lambda method, *a, **k: (captured.setdefault("ls", method.params.label_smoothing), real(method, *a, **k))[1]
    try:
        run_stage(StageSpec(role="m", arch="cifar_resnet8", method="ce", train=cfg, run_dir=tmp_path / "r", config={}),
                  data)
    finally:
        stage.fit = real
    assert captured["ls"] == 0.2


@pytest.mark.parametrize("warmup", [0, 0.01, 0.1, 0.5, 1, 2.5, 7])
@pytest.mark.parametrize("steps_per_epoch", [1, 3, 10, 250])
@pytest.mark.parametrize("schedule", ["cosine", "constant", "step"])
def test_the_rate_never_exceeds_the_peak_whatever_the_warmup(warmup, steps_per_epoch, schedule):
    cfg = TrainConfig(epochs=5, lr=0.001, warmup_epochs=warmup, schedule=schedule, step_size=2)
    rates = [lr_at(cfg, s, steps_per_epoch) for s in range(5 * steps_per_epoch)]
    assert max(rates) <= 0.001 * (1 + 1e-12) and min(rates) > 0
    if warmup * steps_per_epoch > 1:  # a warm-up of more than one step starts below the peak
        assert rates[0] < 0.001


def test_a_run_of_three_steps_logs_at_most_its_peak_rate():
    # compress train --lr 0.001 on 27 images once logged 0.005 at epoch 1 (warm-up of 0.1 epoch, 3 steps)
    cfg = TrainConfig(epochs=1, lr=0.001, warmup_epochs=0.1)
    rates = [lr_at(cfg, s, 3) for s in range(3)]
    assert rates[0] == 0.001 and max(rates) == 0.001  # the warm-up is done within the first step
