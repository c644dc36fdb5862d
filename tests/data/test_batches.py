"""Batches made from the pixel cache are the per-image path's batches, for every transform."""
import numpy as np
import pytest
import torch

from compress.data.batches import BatchAssembler, assemblable
from compress.data.cache import from_arrays
from compress.data.dataset import SubsetDataset
from compress.data.folder import ImageSource
from compress.data.transforms import AugmentConfig, EvalTransform, Normalize, TrainAugment, resolve_augment
from compress.data.vsm import VarianceSuppression, VSMConfig


def _source(bands: int = 3, n: int = 30) -> ImageSource:
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, size=(40 if i % 3 else 33, 40, bands), dtype=np.uint8) for i in range(n)]
    return ImageSource(root="mem", keys=[str(i) for i in range(n)], labels=np.arange(n) % 4,
                       class_names=list("abcd"), bands=bands, dtype="uint8", arrays=arrays)


TRANSFORMS = {
    "aerial default": lambda b: TrainAugment(resolve_augment(AugmentConfig(), False), 24, b),
    "digits default": lambda b: TrainAugment(resolve_augment(AugmentConfig(), True), 24, b),
    "every unit": lambda b: TrainAugment(AugmentConfig(crop_scale=(0.3, 1), hflip=.5, vflip=.5, rot90=.5, rotation=20,
                                                       color_jitter=.4), 24, b),
    "no crop": lambda b: TrainAugment(AugmentConfig(random_resized_crop=False, hflip=.5, vflip=.5, rot90=.9), 24, b),
    "ERKT's VSM": lambda b: VarianceSuppression(VSMConfig(erasing_p=.5, resized_crop_p=.5, autocontrast_p=.5), 24, b),
}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_a_cached_batch_is_the_per_image_batch(name):
    src = _source()
    idx = np.arange(2, 30)
    ds = SubsetDataset(src, idx, TRANSFORMS[name](3), Normalize([.5, .4, .3], [.2, .25, .3]), seed=11, augment=True)
    keys = [(i, e) for e in (0, 3) for i in (5, 0, 27, 13, 2, 9, 21)]
    expected = torch.stack([ds[k][0] for k in keys])
    labels = torch.tensor([ds[k][1] for k in keys])
    x, y = BatchAssembler(ds, from_arrays([src.arrays[i] for i in idx]))(keys)
    assert x.shape == expected.shape == (14, 3, 24, 24)
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-6)
    assert torch.equal(y, labels)
    assert not torch.equal(x[0], x[7])  # the same image in another epoch is augmented otherwise


def test_evaluation_batches_and_single_band_images_match_too():
    src = _source(bands=1)
    idx = np.arange(30)
    for ds in (SubsetDataset(src, idx, EvalTransform(16), Normalize([.5], [.2])),
               SubsetDataset(src, idx, TrainAugment(resolve_augment(AugmentConfig(), True), 16, 1), None, seed=3,
                             augment=True)):
        keys = [(i, 1) for i in range(30)]
        x, _ = BatchAssembler(ds, from_arrays(src.arrays))(keys)
        torch.testing.assert_close(x, torch.stack([ds[k][0] for k in keys]), rtol=0, atol=1e-6)


def test_assembling_leaves_the_callers_random_stream_alone():
    src = _source()
    ds = SubsetDataset(src, np.arange(30), TRANSFORMS["aerial default"](3), None, seed=0, augment=True)
    asm = BatchAssembler(ds, from_arrays(src.arrays))
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    asm([(0, 0), (1, 0)])
    assert torch.equal(torch.rand(3), expected)


def test_what_the_assembler_cannot_stand_in_for_is_said():
    src = _source()
    ds = SubsetDataset(src, np.arange(30), EvalTransform(8), lambda x: x * 2)
    assert not assemblable(ds) and not assemblable(object())
    assert assemblable(SubsetDataset(src, np.arange(30), EvalTransform(8), None))
    with pytest.raises(ValueError, match="the cache holds 2 images, the data set 30"):
        BatchAssembler(SubsetDataset(src, np.arange(30), EvalTransform(8), None), from_arrays(src.arrays[:2]))
