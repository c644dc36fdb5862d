import dataclasses
import math

import numpy as np
import pytest
import torch

from compress.data.vsm import UNITS, USUAL_DA, VarianceSuppression, VSMConfig
from compress.errors import UserInputError

PROBS = {"jitter_p": 0.3, "rotation_p": 0.6, "hflip_p": 0.9, "vflip_p": 0.5, "grayscale_p": 0.1,
         "autocontrast_p": 0.2, "erasing_p": 0.7, "resized_crop_p": 0.4}


def test_paper_defaults_are_table_1():
    c = VarianceSuppression(VSMConfig(), 8, bands=3).cfg  # the RGB defaults
    assert (c.jitter_p, c.rotation_p, c.hflip_p, c.vflip_p, c.grayscale_p, c.autocontrast_p, c.erasing_p,
            c.resized_crop_p, c.cutmix_p) == (1.0, 1.0, 0.9, 0.9, 0.1, 0.1, 1.0, 0.1, 1.0)
    assert (c.brightness, c.contrast, c.saturation, c.rotation_degrees) == (0.5, 0.5, 0.5, 180.0)
    assert round(256 * c.resized_crop_fraction) == 176
    usual = dataclasses.replace(c, **USUAL_DA)
    assert (usual.cutmix_p, usual.hflip_p, usual.vflip_p, usual.erasing_p, usual.resized_crop_p) == (
        0.1, 0.5, 0.5, 0.0, 0.0)


def test_each_unit_fires_with_its_own_probability():
    vsm = VarianceSuppression(VSMConfig(**PROBS), image_size=8, bands=3)
    torch.manual_seed(0)
    x = torch.rand(3, 8, 8)
    n = 1500
    counts = dict.fromkeys(UNITS, 0)
    for _ in range(n):
        y = vsm(x)
        assert y.shape == (3, 8, 8) and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        for u in vsm.last_fired:
            counts[u] += 1
    for u in UNITS:
        p = PROBS[f"{u}_p"]
        assert abs(counts[u] / n - p) < 4 * math.sqrt(p * (1 - p) / n), (u, counts[u] / n, p)


def test_units_at_zero_and_one_never_and_always_fire():
    off = dict.fromkeys((f"{u}_p" for u in UNITS), 0.0)
    vsm = VarianceSuppression(VSMConfig(**{**off, "hflip_p": 1.0}), image_size=6, bands=3)
    x = torch.rand(3, 6, 6)
    for _ in range(20):
        assert torch.equal(vsm(x), x.flip(-1)) and vsm.last_fired == ["hflip"]
    vsm = VarianceSuppression(VSMConfig(**off), image_size=6, bands=3)
    assert torch.equal(vsm(x), x) and vsm.last_fired == []


def test_output_is_resized_to_the_training_size():
    vsm = VarianceSuppression(VSMConfig(), image_size=12, bands=3)
    for _ in range(30):
        assert vsm(torch.rand(3, 30, 20)).shape == (3, 12, 12)


def test_cutmix_unit_is_gated_per_batch():
    x, y = torch.rand(6, 3, 8, 8), torch.arange(6)
    never = VarianceSuppression(VSMConfig(cutmix_p=0.0), 8, 3)
    assert torch.equal(never.mix_batch(x, y).images, x)
    always = VarianceSuppression(VSMConfig(cutmix_p=1.0), 8, 3)
    torch.manual_seed(0)
    np.random.seed(0)  # the gate and λ come from NumPy's global RNG (no device sync)
    fired = sum(bool((always.mix_batch(x, y).lam < 1).any()) for _ in range(50))
    assert fired >= 45  # a zero-area box (λ≈1) is the only way not to mix


def test_bad_settings_are_rejected():
    with pytest.raises(UserInputError, match="probability"):
        VSMConfig(vflip_p=-0.1)
    with pytest.raises(UserInputError, match="saturation and grayscale_p need 3-band"):
        VarianceSuppression(VSMConfig(saturation=0.5, grayscale_p=0.1), 8, bands=4)
    with pytest.raises(UserInputError, match="grayscale_p need 3-band"):
        VarianceSuppression(VSMConfig(grayscale_p=0.2), 8, bands=1)
    with pytest.raises(UserInputError, match=r"\[3, H, W\]"):
        VarianceSuppression(VSMConfig(), 8, bands=3)(torch.rand(1, 8, 8))


@pytest.mark.parametrize("bands", [1, 4, 13])
def test_vsm_runs_on_single_band_and_multispectral_images(bands):
    """Brightness/contrast on any band count; the RGB-only units default to off."""
    vsm = VarianceSuppression(VSMConfig(), 10, bands=bands)
    assert vsm.cfg.saturation == 0.0 and vsm.cfg.grayscale_p == 0.0
    torch.manual_seed(0)
    x = torch.rand(bands, 16, 16)
    fired = set()
    for _ in range(40):
        y = vsm(x)
        assert y.shape == (bands, 10, 10) and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        fired |= set(vsm.last_fired)
    assert "jitter" in fired and "grayscale" not in fired
    stretched = VarianceSuppression._autocontrast(x * 0.5 + 0.2)  # per band to the full [0, 1] range
    assert torch.allclose(stretched.amin(dim=(1, 2)), torch.zeros(bands), atol=1e-6)
    assert torch.allclose(stretched.amax(dim=(1, 2)), torch.ones(bands), atol=1e-6)


def test_band_jitter_scales_brightness_and_contrast():
    off = dict.fromkeys((f"{u}_p" for u in UNITS), 0.0)
    x = torch.full((2, 4, 4), 0.4)
    x[:, :2] = 0.2
    bright = VarianceSuppression(VSMConfig(**{**off, "jitter_p": 1.0}, brightness=0.5, contrast=0.0), 4, bands=2)
    torch.manual_seed(1)
    y = bright(x)
    ratio = float(y[0, 0, 0] / x[0, 0, 0])
    assert 0.5 <= ratio <= 1.5 and torch.allclose(y, x * ratio)  # one factor for every band and pixel
    contrast = VarianceSuppression(VSMConfig(**{**off, "jitter_p": 1.0}, brightness=0.0, contrast=0.5), 4, bands=2)
    y = contrast(x)
    assert torch.allclose(y.mean(), x.mean(), atol=1e-6)  # contrast keeps the mean over all bands
