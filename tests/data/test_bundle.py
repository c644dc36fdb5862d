import numpy as np
import pytest
import torch

from compress.data import DataConfig, build_data
from compress.data.split import load_split
from compress.errors import UserInputError


def test_embedded_digits_default():
    b = build_data(DataConfig())
    assert b.source_name == "digits" and b.class_names == [str(i) for i in range(10)]
    assert len(b.train) + len(b.val) + len(b.test) == 1797
    assert b.in_chans == 1 and b.image_size == 16
    x, y = b.test[0]
    assert x.shape == (1, 16, 16) and x.dtype == torch.float32


def test_data_normalisation_is_computed_from_training_images(tiny_folder):
    b = build_data(DataConfig(data=str(tiny_folder), train_ratio=0.5, val_fraction=0.0, image_size=12))
    xs = torch.stack([b.train.raw(i) for i in range(len(b.train))])
    np.testing.assert_allclose(b.mean, xs.mean(dim=(0, 2, 3)).numpy(), rtol=1e-5)
    np.testing.assert_allclose(b.std, xs.std(dim=(0, 2, 3), unbiased=False).numpy(), rtol=1e-4)


def test_augmentation_is_identical_for_same_epoch_and_differs_across_epochs(tiny_folder):
    b = build_data(DataConfig(data=str(tiny_folder), train_ratio=0.5, val_fraction=0.0, image_size=8))
    b.train.set_epoch(0)
    a0, a0b = b.train[1][0], b.train[1][0]
    b.train.set_epoch(1)
    a1 = b.train[1][0]
    assert torch.equal(a0, a0b) and not torch.equal(a0, a1)


def test_split_saved_and_reused(tiny_folder, tmp_path):
    run = tmp_path / "run"
    b1 = build_data(DataConfig(data=str(tiny_folder), train_ratio=0.5), seed=1, run_dir=run)
    b2 = build_data(DataConfig(data=str(tiny_folder), train_ratio=0.5), seed=99, run_dir=run, reuse_split=True)
    assert b1.split == b2.split == load_split(run)


def test_explicit_test_dir(tiny_folder, tmp_path):
    from tests.conftest import write_folder

    test_root = write_folder(tmp_path / "test", per_class=2, seed=5)
    b = build_data(DataConfig(data=str(tiny_folder), test_dir=str(test_root), val_fraction=0.0))
    assert len(b.train) == 18 and len(b.test) == 6 and b.val is None


def test_color_jitter_on_single_band_is_refused():
    from compress.data.transforms import AugmentConfig

    with pytest.raises(UserInputError, match="color_jitter needs 3-band"):
        build_data(DataConfig(augment=AugmentConfig(color_jitter=0.4)))
