"""Automatic epochs on small training sets, and which epoch's checkpoint is kept on a small validation split."""
import pytest

from compress.engine.train_config import AUTO_EPOCHS, AUTO_MAX_EPOCHS, TrainConfig, auto_epochs
from compress.engine.loop import keeps
from compress.errors import UserInputError


def test_a_large_set_keeps_ten_epochs():
    assert auto_epochs(8000, 64) == AUTO_EPOCHS == 10


def test_a_small_set_gets_enough_epochs_for_300_steps():
    assert auto_epochs(333, 64) == 60  # 5 steps an epoch
    assert auto_epochs(1258, 64) == 16  # 19 steps an epoch
    assert auto_epochs(1258, 32, world=2) == 16  # the global batch counts


def test_a_tiny_set_is_capped():
    assert auto_epochs(100, 64) == AUTO_MAX_EPOCHS == 100


def test_given_epochs_win_and_auto_resolves_from_the_data():
    assert TrainConfig(epochs=3).with_epochs(333).epochs == 3
    assert TrainConfig().with_epochs(333).epochs == 60
    r = TrainConfig().resolved(pretrained=True, train_images=333)
    assert (r.epochs, r.warmup_epochs) == (60, 1.0)
    assert TrainConfig().resolved(pretrained=False).epochs == 10  # size unknown: the plain default


def test_zero_epochs_are_refused():
    with pytest.raises(UserInputError, match="epochs must be ≥ 1"):
        TrainConfig(epochs=0)


def test_a_later_epoch_within_the_noise_of_a_small_val_split_is_kept():
    # 20 images at 90 %: the SE of a difference is 10.8 pt, so 80 % (two images fewer) is noise
    assert keeps(0.85, 0.90, 20)
    assert keeps(0.80, 0.90, 20)
    assert not keeps(0.75, 0.90, 20)


def test_one_image_below_a_near_perfect_small_val_score_is_noise():
    # the raw p(1-p) at 20/20 is 0: one image (5 pt) would look significant
    assert keeps(0.85, 0.95, 20)
    assert not keeps(0.80, 0.95, 20)
    assert keeps(0.95, 1.00, 20)
    assert not keeps(0.90, 1.00, 20)


def test_a_large_val_split_keeps_only_real_ties_or_gains():
    assert not keeps(0.85, 0.90, 2000)  # 1 SE of a difference = 0.95 pt
    assert keeps(0.895, 0.90, 2000)
    assert keeps(0.5, -1.0, 10)  # the first evaluation always keeps
