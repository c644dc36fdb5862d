"""Simulated PAN/MS pairs: shapes, bands, resolution, values, no overwrite, CLI."""
import math

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from compress.data.images import read_image
from compress.data.simulate import gaussian_sigma, nir_proxy, simulate_pair, simulate_pan_ms
from compress.errors import DataError, UserInputError
from tests.conftest import write_folder


def test_gaussian_mtf_is_0_3_at_low_res_nyquist():
    s = gaussian_sigma(4)
    assert math.isclose(math.exp(-2 * math.pi ** 2 * s ** 2 * (1 / 8) ** 2), 0.3, rel_tol=1e-12)
    assert math.isclose(s, 1.975757, rel_tol=1e-5)  # 4·√(2·1.2039728)/π


def test_constant_image_values():
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[...] = (100, 150, 50)
    pan, ms = simulate_pair(rgb, 4)
    assert pan.shape == (8, 8, 1) and ms.shape == (2, 2, 4) and pan.dtype == ms.dtype == np.uint8
    assert (pan == round(0.299 * 100 + 0.587 * 150 + 0.114 * 50)).all()  # 126
    r, g, b = 100 / 255, 150 / 255, 50 / 255
    nir = round(min(1.0, g + 0.5 * (g - r) - 0.5 * max(b - g, 0)) * 255)  # 175
    assert (ms[..., :3] == (100, 150, 50)).all() and (ms[..., 3] == nir).all() and nir == 175


def test_blur_then_decimate_keeps_low_frequencies_only():
    x = np.zeros((32, 32, 3), np.uint8)
    x[:, ::2] = 255  # 2-px stripes: far above the MS Nyquist frequency
    _, ms = simulate_pair(x, 4)
    assert ms.shape == (8, 8, 4) and np.ptp(ms[..., 0]) <= 2  # aliasing removed by the blur


def test_nir_proxy_vegetation_bright_water_dark():
    veg, water = np.array([[[0.2, 0.6, 0.2]]]), np.array([[[0.1, 0.3, 0.7]]])
    assert nir_proxy(veg)[0, 0] == pytest.approx(0.8) and nir_proxy(water)[0, 0] == pytest.approx(0.2)


def test_folder_simulation_and_refusal(tmp_path):
    src = write_folder(tmp_path / "rgb", classes=2, per_class=2, size=12)
    calls = []
    r = simulate_pan_ms(src, tmp_path / "sim", progress=lambda d, t: calls.append((d, t)))
    assert (r.images, r.classes, r.pan_shape, r.ms_shape) == (4, 2, (12, 12, 1), (3, 3, 4))
    assert read_image(tmp_path / "sim/pan/class_1/img_0.tif").shape == (12, 12, 1)
    assert read_image(tmp_path / "sim/ms/class_1/img_0.tif").shape == (3, 3, 4)
    assert calls[-1] == (4, 4)
    with pytest.raises(UserInputError, match="already exists"):
        simulate_pan_ms(src, tmp_path / "sim")
    with pytest.raises(DataError, match="3 bands"):
        simulate_pair(np.zeros((8, 8, 1), np.uint8))


def test_cli(tmp_path):
    from compress.cli.data import register

    app = typer.Typer()
    register(app)
    src = write_folder(tmp_path / "rgb", classes=2, per_class=1, size=8)
    res = CliRunner().invoke(app, ["data", "simulate-pan-ms", str(src), str(tmp_path / "out"), "--json"])
    assert res.exit_code == 0, res.output
    assert '"ms_shape": [\n    2,\n    2,\n    4\n  ]' in res.output
    again = CliRunner().invoke(app, ["data", "simulate-pan-ms", str(src), str(tmp_path / "out")])
    assert again.exit_code == 1 and "already exists" in again.output
