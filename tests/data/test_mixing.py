import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compress.data.mixing import (cutmix, cutmix_box, different_class_partners, mixup, sample_beta,
                                  unmixed)
from compress.errors import UserInputError


def _batch(b=4, h=10, w=8):
    torch.manual_seed(0)
    return torch.rand(b, 3, h, w), torch.tensor([0, 1, 2, 1])[:b]


def test_cutmix_label_weight_is_the_exact_kept_area():
    x, y = _batch()
    index = torch.tensor([1, 2, 3, 0])
    mb = cutmix(x, y, lam=0.5, index=index, box=(2, 1, 7, 5))  # 5 rows × 4 cols of 10 × 8
    assert mb.lam.tolist() == pytest.approx([1 - 20 / 80] * 4)
    assert torch.equal(mb.images[:, :, 2:7, 1:5], x[index][:, :, 2:7, 1:5])
    outside = torch.ones(10, 8, dtype=torch.bool)
    outside[2:7, 1:5] = False
    assert torch.equal(mb.images[:, :, outside], x[:, :, outside])
    assert torch.equal(mb.targets_b, y[index])
    soft = mb.soft_targets(3).numpy()
    expect = np.zeros((4, 3))
    for i in range(4):
        expect[i, y[i]] += 0.75
        expect[i, y[index][i]] += 0.25
    np.testing.assert_allclose(soft, expect, atol=1e-7)


def test_cutmix_random_boxes_are_clipped_and_lam_recomputed():
    x, y = _batch()
    gen = torch.Generator().manual_seed(5)
    for lam in (0.0, 0.3, 0.7, 1.0):
        top, left, bottom, right = cutmix_box(10, 8, lam, gen)
        assert 0 <= top <= bottom <= 10 and 0 <= left <= right <= 8
    torch.manual_seed(1)
    for _ in range(20):
        mb = cutmix(x, y, 0.4, torch.tensor([1, 0, 3, 2]))
        changed = (mb.images != x).any(dim=1)[0]  # pixels replaced in image 0 (partner differs everywhere)
        assert mb.lam[0].item() == pytest.approx(1 - changed.sum().item() / 80)


def test_mixed_cross_entropy_matches_the_formula():
    x, y = _batch()
    mb = cutmix(x, y, 0.5, torch.tensor([2, 0, 1, 3]), box=(0, 0, 5, 8))
    logits = torch.randn(4, 3)
    lam = 0.5
    logp = F.log_softmax(logits, 1).numpy()
    expect = np.mean([-(lam * logp[i, y[i]] + (1 - lam) * logp[i, mb.targets_b[i]]) for i in range(4)])
    assert mb.cross_entropy(logits).item() == pytest.approx(expect, rel=1e-6)


def test_mixup_is_an_exact_convex_combination():
    x, y = _batch()
    index = torch.tensor([3, 2, 1, 0])
    mb = mixup(x, y, 0.3, index)
    torch.testing.assert_close(mb.images, 0.3 * x + 0.7 * x[index])
    assert mb.lam.tolist() == pytest.approx([0.3] * 4)
    with pytest.raises(UserInputError, match=r"\[0, 1\]"):
        mixup(x, y, 1.2, index)


def test_unmixed_is_identity():
    x, y = _batch()
    mb = unmixed(x, y)
    assert torch.equal(mb.images, x) and torch.equal(mb.targets_b, y) and mb.lam.tolist() == [1.0] * 4


def test_different_class_partners():
    y = torch.tensor([0, 0, 1, 2, 2, 2])
    index, valid = different_class_partners(y, torch.Generator().manual_seed(0))
    assert bool(valid.all()) and bool((y[index] != y).all())
    index, valid = different_class_partners(torch.tensor([4, 4, 4]))
    assert not bool(valid.any()) and index.tolist() == [0, 1, 2]


def test_beta_samples_have_the_beta_moments():
    torch.manual_seed(0)
    a = 0.1
    draws = np.array([sample_beta(a) for _ in range(4000)])
    assert ((draws >= 0) & (draws <= 1)).all()
    assert draws.mean() == pytest.approx(0.5, abs=0.03)
    assert draws.var() == pytest.approx(1 / (4 * (2 * a + 1)), abs=0.015)  # α²/((2α)²(2α+1))
    with pytest.raises(UserInputError, match="> 0"):
        sample_beta(0.0)
