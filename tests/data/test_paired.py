"""Paired sources: alignment, missing partners, per-source preprocessing, shared augmentation."""
import shutil

import numpy as np
import pytest
import torch

from compress.data.paired import SourcePrep, build_paired_data, scan_pairs
from compress.errors import DataError
from tests.conftest import write_folder


def _pair(tmp_path, size2=8):
    s1 = write_folder(tmp_path / "s1", classes=2, per_class=4, size=4, bands=4, fmt="tif")
    s2 = write_folder(tmp_path / "s2", classes=2, per_class=4, size=size2, bands=1, fmt="png", seed=1)
    return s1, s2


def test_pairs_align_across_extensions(tmp_path):
    s1, s2 = _pair(tmp_path)
    a, b = scan_pairs(s1, s2)
    assert a.keys[3] == "class_0/img_3.tif" and b.keys[3] == "class_0/img_3.png"
    assert [k.rsplit(".", 1)[0] for k in a.keys] == [k.rsplit(".", 1)[0] for k in b.keys]
    assert (a.bands, b.bands) == (4, 1)


def test_missing_partner_is_named(tmp_path):
    s1, s2 = _pair(tmp_path)
    (s2 / "class_1" / "img_2.png").unlink()
    with pytest.raises(DataError, match=r"no partner under --source2 .*class_1/img_2.tif"):
        scan_pairs(s1, s2)
    shutil.copy(s1 / "class_0" / "img_0.tif", s1 / "class_0" / "extra.tif")
    (s2 / "class_1" / "img_2.png").write_bytes((s2 / "class_1" / "img_1.png").read_bytes())
    with pytest.raises(DataError, match="class_0/extra.tif"):
        scan_pairs(s1, s2)


def test_items_have_each_sources_size_and_normalisation(tmp_path):
    s1, s2 = _pair(tmp_path)
    prep1 = SourcePrep(4, 6, (0.5,) * 4, (0.25,) * 4)
    p = build_paired_data(s1, s2, train_ratio=0.5, prep1=prep1, image_size2=12)
    (x1, x2), y = p.test[0]
    assert x1.shape == (4, 6, 6) and x2.shape == (1, 12, 12) and y == 0
    assert (len(p.train), len(p.test)) == (4, 4) and p.source2.bands == 1 and p.source1 == prep1
    assert p.split.root == str(s2) and p.split.test[0].endswith(".png") and p.split1.test[0].endswith(".tif")
    raw = p.sources[0].load(int(p.test.indices[0])).astype(np.float64) / 255  # uint8 scale
    expect = (torch.nn.functional.interpolate(torch.tensor(raw.transpose(2, 0, 1))[None].float(), size=(6, 6),
                                              mode="bilinear", align_corners=False, antialias=False)[0] - 0.5) / 0.25
    assert torch.allclose(x1, expect, atol=1e-5)


def test_augmentation_is_shared_by_the_pair(tmp_path):
    s1 = write_folder(tmp_path / "a", classes=2, per_class=3, size=8)
    s2 = tmp_path / "b"
    shutil.copytree(s1, s2)  # identical sources: the augmented views must stay identical
    p = build_paired_data(s1, s2, train_ratio=0.5, seed=3)
    seen_flip = False
    for epoch in range(3):
        p.train.set_epoch(epoch)
        for i in range(len(p.train)):
            (x1, x2), _ = p.train[i]
            assert torch.equal(x1, x2)
            seen_flip |= not torch.equal(x1, p.train.eval_view()[i][0][0])
    assert seen_flip
