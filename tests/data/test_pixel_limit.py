"""One pixel limit for every format, checked on the header before any pixel is decoded."""
import struct
import zlib

import numpy as np
import pytest

from compress.data import images
from compress.data.images import DEFAULT_MAX_PIXELS, ImageReadError, read_image, set_max_pixels


def _tiff_declaring(path, w, h):
    import tifffile

    tifffile.imwrite(path, np.zeros((16, 16, 3), dtype=np.uint8), photometric="rgb")
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(w)
        tif.pages[0].tags["ImageLength"].overwrite(h)
    return path


def _png_declaring(path, w, h):
    from PIL import Image

    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", w, h)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(autouse=True)
def _default_limit():
    saved = images._max_pixels[0]
    yield
    images._max_pixels[0] = saved


@pytest.mark.parametrize("make", [_tiff_declaring, _png_declaring], ids=["tiff", "png"])
def test_a_file_declaring_too_many_pixels_is_refused_before_decoding(tmp_path, make):
    path = make(tmp_path / f"bomb.{'tif' if make is _tiff_declaring else 'png'}", 60000, 60000)
    with pytest.raises(ImageReadError, match="60000×60000 = 3,600,000,000 pixels, over the limit"):
        read_image(path)
    assert DEFAULT_MAX_PIXELS < 60000 * 60000


def test_the_limit_can_be_raised_and_applies_to_small_files_too(tmp_path):
    path = _tiff_declaring(tmp_path / "ok.tif", 16, 16)
    assert read_image(path).shape == (16, 16, 3)
    set_max_pixels(100)
    with pytest.raises(ImageReadError, match="over the limit of 100"):
        read_image(path)
    set_max_pixels(256)
    assert read_image(path).shape == (16, 16, 3)


def test_predict_skips_a_bomb_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from compress.cli import app

    runner = CliRunner()
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", "--image-size", "8", "--epochs", "1", "--batch-size", "256", "--device", "cpu",
                               "--out", str(run)]).exit_code == 0
    bomb = _tiff_declaring(tmp_path / "bomb.tif", 60000, 60000)
    res = runner.invoke(app, ["predict", str(run), str(bomb)])
    assert res.exit_code != 0 and "Traceback" not in res.output and "over the limit" in res.output, res.output
