import numpy as np
import pytest

from compress.data import DataConfig, build_data, scan_folder
from compress.errors import DataError
from tests.conftest import write_folder


def test_scan_reads_classes_in_sorted_order(tiny_folder):
    src = scan_folder(tiny_folder)
    assert src.class_names == ["class_0", "class_1", "class_2"]
    assert len(src) == 18 and src.bands == 3 and src.dtype == "uint8"
    assert np.bincount(src.labels).tolist() == [6, 6, 6]


def test_truncated_and_garbage_files_are_reported_and_skipped(tiny_folder, tmp_path):
    good = (tiny_folder / "class_0" / "img_0.png").read_bytes()
    (tiny_folder / "class_0" / "broken.png").write_bytes(good[: len(good) // 2])
    (tiny_folder / "class_1" / "junk.jpg").write_bytes(b"not an image at all")
    src = scan_folder(tiny_folder)
    assert len(src) == 18
    assert sorted(k for k, _ in src.bad_files) == ["class_0/broken.png", "class_1/junk.jpg"]
    run = tmp_path / "run"
    bundle = build_data(DataConfig(data=str(tiny_folder), train_ratio=0.5, val_fraction=0.0), run_dir=run)
    report = (run / "bad_files.txt").read_text().splitlines()
    assert report[0] == "2 unreadable image(s) skipped" and len(report) == 3
    assert len(bundle.train) + len(bundle.test) == 18


def test_empty_class_folder_is_an_error(tiny_folder):
    (tiny_folder / "class_9").mkdir()
    with pytest.raises(DataError, match="class_9' holds no images"):
        scan_folder(tiny_folder)


def test_mixed_band_counts_name_the_file(tmp_path):
    root = write_folder(tmp_path / "d", bands=3)
    write_folder(tmp_path / "odd", classes=1, per_class=1, bands=1)
    (tmp_path / "odd" / "class_0" / "img_0.png").rename(root / "class_1" / "gray.png")
    with pytest.raises(DataError, match=r"Mixed band counts: '.*gray.png' has 1 bands"):
        scan_folder(root)


def test_multiband_tiff_sets_in_chans(tmp_path):
    root = write_folder(tmp_path / "ms", bands=5, fmt="tif")
    b = build_data(DataConfig(data=str(root), train_ratio=0.5, val_fraction=0.0, image_size=8))
    x, y = b.train[0]
    assert b.in_chans == 5 and x.shape == (5, 8, 8) and len(b.mean) == 5


def test_missing_folder_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        scan_folder(tmp_path / "nope")
