"""The pixel cache: decoded once, the same pixels as the decoder, a new file when the split or an image changes."""
import os

import numpy as np
import pytest
import torch

from compress.data import cache as cache_mod
from compress.data.cache import cache_folder, from_arrays, memmap_cache, subset_cache
from compress.data.folder import scan_folder
from compress.data.images import read_image
from compress.errors import DataError


def test_images_are_views_of_the_decoded_arrays_whatever_their_sizes():
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((5, 7), (9, 4), (1, 1))]
    c = from_arrays(arrays)
    assert len(c) == 3 and c.nbytes == sum(a.nbytes for a in arrays) and c.buffer.dtype == torch.uint8
    for i, a in enumerate(arrays):
        assert torch.equal(c.image(i), torch.from_numpy(a))


def test_memmap_holds_the_decoded_pixels_and_is_reused_without_decoding(tiny_folder, tmp_path, monkeypatch):
    src = scan_folder(tiny_folder, cache=False)
    assert src.arrays is None
    idx = np.array([4, 0, 7, 11])
    c = memmap_cache(src, idx, folder=tmp_path / "c")
    for j, i in enumerate(idx):
        assert torch.equal(c.image(j), torch.from_numpy(np.array(read_image(tiny_folder / src.keys[i]))))
    files = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert len(files) == 2 and not any(f.endswith(".tmp") for f in files)

    def no_decoding(path):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache_mod, "read_image", no_decoding)
    again = memmap_cache(src, idx, folder=tmp_path / "c")
    assert again.path == c.path and torch.equal(again.buffer, c.buffer)


def test_a_new_split_or_a_changed_image_builds_a_new_file(tiny_folder, tmp_path):
    src = scan_folder(tiny_folder, cache=False)
    a = memmap_cache(src, np.array([0, 1, 2]), folder=tmp_path)
    b = memmap_cache(src, np.array([0, 1, 3]), folder=tmp_path)
    assert a.path != b.path
    from PIL import Image

    target = tiny_folder / src.keys[1]
    Image.fromarray(np.full((12, 12, 3), 7, dtype=np.uint8)).save(target)
    os.utime(target, ns=(1, 1))  # a rewrite within the clock's resolution still changes the key
    c = memmap_cache(src, np.array([0, 1, 2]), folder=tmp_path)
    assert c.path != a.path and int(c.image(1)[0, 0, 0]) == 7


def test_an_image_gone_unreadable_since_the_scan_is_one_line(tiny_folder, tmp_path):
    src = scan_folder(tiny_folder, cache=False)
    (tiny_folder / src.keys[2]).write_bytes(b"not an image")
    with pytest.raises(DataError, match="could not be read while building the pixel cache"):
        memmap_cache(src, np.array([2]), folder=tmp_path)
    assert not any(p.suffix == ".tmp" for p in tmp_path.iterdir())


def test_the_cache_goes_beside_the_data_or_to_the_user_cache_when_the_data_is_read_only(tiny_folder, tmp_path,
                                                                                      monkeypatch):
    src = scan_folder(tiny_folder, cache=False)
    assert cache_folder(src) == tiny_folder.resolve() / ".compress-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(cache_mod.os, "access", lambda path, mode: False)
    assert cache_folder(src) == tmp_path / "xdg" / "compress-edge"


def test_a_scan_skips_the_cache_folder(tiny_folder):
    src = scan_folder(tiny_folder, cache=False)
    subset_cache(src, np.arange(len(src)))
    assert (tiny_folder / ".compress-cache").is_dir()
    assert scan_folder(tiny_folder).keys == src.keys


def test_pixel_types_torch_cannot_convert_everywhere_are_not_cached(tmp_path):
    from tests.conftest import write_folder

    root = write_folder(tmp_path / "d", classes=2, per_class=2, fmt="tif")
    src = scan_folder(root)
    src.dtype = "uint16"
    assert subset_cache(src, np.arange(len(src))) is None


def test_a_damaged_index_is_rebuilt_not_a_traceback(tiny_folder, tmp_path):
    src = scan_folder(tiny_folder, cache=False)
    first = memmap_cache(src, np.array([0, 1]), folder=tmp_path)
    index = next(tmp_path.glob("*.json"))
    index.write_text("{not json")
    again = memmap_cache(src, np.array([0, 1]), folder=tmp_path)
    assert torch.equal(again.buffer, first.buffer) and "shapes" in index.read_text()
