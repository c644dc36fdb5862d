"""AT, SP, RKD and feature MSE against numpy references written here and hand-worked values."""
import itertools

import numpy as np
import pytest
import torch

from compress.errors import UserInputError
from compress.losses import functional as LF

FS = np.round(np.sin(1.3 * np.arange(54)), 3).reshape(3, 2, 3, 3)  # student [B, C_s, H, W]
FT = np.round(np.cos(0.7 * np.arange(108)) + 0.2, 3).reshape(3, 4, 3, 3)  # teacher, more channels
ES = np.array([[0.5, 1.0, -0.2], [1.5, -0.3, 0.4], [-0.8, 0.2, 1.1], [0.0, 0.9, 0.3]])
ET = np.array([[1.0, 0.2, 0.0, -0.5], [0.3, -1.2, 0.8, 0.1], [-0.4, 0.7, 1.5, 0.2], [0.9, 0.4, -0.6, 1.0]])


def tt(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def np_at(fs, ft, p=2.0, distance="squared-mean"):
    def q(f):
        a = (np.abs(f) ** p).mean(axis=1).reshape(f.shape[0], -1)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    if distance == "norm":
        return np.mean(np.linalg.norm(q(fs) - q(ft), axis=1))
    return np.mean((q(fs) - q(ft)) ** 2)


def np_sp(fs, ft):
    def g(f):
        q = f.reshape(f.shape[0], -1)
        m = q @ q.T
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    b = fs.shape[0]
    return np.sum((g(fs) - g(ft)) ** 2) / b**2


def huber(x, y):
    d = abs(x - y)
    return 0.5 * d * d if d < 1 else d - 0.5


def np_rkd(es, et, wd, wa):
    n = len(es)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    ds = np.array([np.linalg.norm(es[i] - es[j]) for i, j in pairs])
    dt = np.array([np.linalg.norm(et[i] - et[j]) for i, j in pairs])
    ld = np.mean([huber(a, b) for a, b in zip(ds / ds.mean(), dt / dt.mean())])

    def cos(e, i, j, k):
        u, v = e[i] - e[j], e[k] - e[j]
        return u @ v / (np.linalg.norm(u) * np.linalg.norm(v))

    trips = [t for t in itertools.permutations(range(n), 3)]
    la = np.mean([huber(cos(es, *t), cos(et, *t)) for t in trips])
    return wd * ld + wa * la


GOLDEN = {"at": 0.07087409, "at_norm": 0.79240715, "sp": 0.60281063, "rkd": 8.93134307}


def test_at_matches_numpy_golden_and_sum_equals_mean():
    assert np_at(FS, FT) == pytest.approx(GOLDEN["at"], rel=1e-6)
    got = LF.at_loss(tt(FS), tt(FT), distance="squared-mean").item()
    assert got == pytest.approx(np_at(FS, FT), rel=1e-12)
    assert LF.at_loss(tt(FS), tt(FT), reduction_over_channels="sum", distance="squared-mean").item() == \
        pytest.approx(got, rel=1e-12)
    assert LF.at_loss(tt(FS), tt(FT), p=1.0, distance="squared-mean").item() == \
        pytest.approx(np_at(FS, FT, p=1.0), rel=1e-12)


def test_at_default_is_the_papers_norm_form():
    assert np_at(FS, FT, distance="norm") == pytest.approx(GOLDEN["at_norm"], rel=1e-6)
    assert LF.at_loss(tt(FS), tt(FT)).item() == pytest.approx(np_at(FS, FT, distance="norm"), rel=1e-12)
    assert LF.at_loss(tt(FS), tt(FT), p=1.0).item() == pytest.approx(np_at(FS, FT, 1.0, "norm"), rel=1e-12)


def test_at_norm_distance_is_per_sample_l2():
    # 1 sample, 1×2 maps: q_s = (1, 0), q_t = (0, 1) → ‖q_s − q_t‖ = √2; squared-mean = 2/2 = 1
    fs = torch.tensor([[[[1.0, 0.0]]]])
    ft = torch.tensor([[[[0.0, 3.0]]]])
    assert LF.at_loss(fs, ft).item() == pytest.approx(2**0.5, rel=1e-6)
    assert LF.at_loss(fs, ft, distance="squared-mean").item() == pytest.approx(1.0, rel=1e-6)


def test_at_interpolates_student_map_or_raises():
    fs = torch.full((2, 3, 2, 2), 2.0, requires_grad=True)
    ft = torch.full((2, 5, 4, 4), -1.0)
    loss = LF.at_loss(fs, ft)  # uniform maps at any size: identical after resize + normalise
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    loss.backward()
    assert fs.grad is not None
    with pytest.raises(UserInputError, match="spatial size \\(2, 2\\) differs from teacher \\(4, 4\\)"):
        LF.at_loss(fs, ft, resize="raise")


def test_at_layers_sums_pairs():
    pairs = [(tt(FS), tt(FT)), (tt(FS[:, :, :2, :2]), tt(FT[:, :, 1:, 1:]))]
    total = LF.at_loss_layers([a for a, _ in pairs], [b for _, b in pairs], distance="squared-mean").item()
    expected = np_at(FS, FT) + np_at(FS[:, :, :2, :2], FT[:, :, 1:, 1:])
    assert total == pytest.approx(expected, rel=1e-12)
    total = LF.at_loss_layers([a for a, _ in pairs], [b for _, b in pairs]).item()
    expected = np_at(FS, FT, distance="norm") + np_at(FS[:, :, :2, :2], FT[:, :, 1:, 1:], distance="norm")
    assert total == pytest.approx(expected, rel=1e-12)
    with pytest.raises(UserInputError, match="same non-zero number"):
        LF.at_loss_layers([tt(FS)], [])


def test_sp_matches_numpy_golden_and_hand_value():
    assert np_sp(FS, FT) == pytest.approx(GOLDEN["sp"], rel=1e-6)
    assert LF.sp_loss(tt(FS), tt(FT)).item() == pytest.approx(np_sp(FS, FT), rel=1e-12)
    # orthogonal student rows: G_s = I; teacher Q Qᵀ = [[2, 4], [4, 8]] → both rows [1, 2]/√5
    es = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    et = torch.tensor([[1.0, 1.0], [2.0, 2.0]])
    gt = np.array([[1, 2], [1, 2]]) / np.sqrt(5)
    expected = np.sum((np.eye(2) - gt) ** 2) / 4
    assert LF.sp_loss(es, et).item() == pytest.approx(expected, rel=1e-6)


def test_rkd_matches_numpy_golden():
    assert np_rkd(ES, ET, 25.0, 50.0) == pytest.approx(GOLDEN["rkd"], rel=1e-6)
    assert LF.rkd_loss(tt(ES), tt(ET)).item() == pytest.approx(np_rkd(ES, ET, 25.0, 50.0), rel=1e-10)
    assert LF.rkd_loss(tt(ES), tt(ET), 1.0, 0.0).item() == pytest.approx(np_rkd(ES, ET, 1.0, 0.0), rel=1e-10)


def test_rkd_invariant_to_scale_and_small_batches():
    # both terms are scale-invariant: a scaled teacher is matched exactly
    assert LF.rkd_loss(tt(ES), tt(3.0 * ES)).item() == pytest.approx(0.0, abs=1e-12)
    one = tt(ES[:1], grad=True)
    loss = LF.rkd_loss(one, tt(ET[:1]))
    loss.backward()
    assert loss.item() == 0.0 and one.grad is not None
    # B = 2: the one distance normalises to 1 for both models and there is no triplet
    assert LF.rkd_loss(tt(ES[:2]), tt(ET[:2])).item() == 0.0


def test_feature_mse_reductions_hand_values():
    fs = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    ft = torch.tensor([[0.0, 2.0], [1.0, 2.0]])  # squared errors: [1, 0], [4, 9]
    assert LF.feature_mse_loss(fs, ft).item() == pytest.approx(14 / 4)
    assert LF.feature_mse_loss(fs, ft, reduction="batchmean").item() == pytest.approx(14 / 2)
    assert LF.feature_mse_loss(fs, ft, reduction="sum").item() == pytest.approx(14.0)
    with pytest.raises(UserInputError, match="must have the same shape; add a regressor"):
        LF.feature_mse_loss(fs, torch.zeros(2, 3))
    with pytest.raises(UserInputError, match="reduction"):
        LF.feature_mse_loss(fs, ft, reduction="max")


@pytest.mark.parametrize("name", ["at", "sp", "rkd", "mse"])
def test_zero_when_equal_and_teacher_gets_no_grad(name):
    f = {"at": FT, "sp": FT, "rkd": ET, "mse": FT}[name]
    fn = {"at": LF.at_loss, "sp": LF.sp_loss, "rkd": LF.rkd_loss, "mse": LF.feature_mse_loss}[name]
    assert fn(tt(f), tt(f)).item() == pytest.approx(0.0, abs=1e-12)
    s, t = tt(f + 0.1 * np.sin(np.arange(f.size)).reshape(f.shape), grad=True), tt(f, grad=True)
    loss = fn(s, t)
    loss.backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert t.grad is None


def test_feature_losses_finite_on_extreme_and_duplicate_inputs():
    e = torch.tensor([[1e4, -1e4], [1e4, -1e4], [0.0, 1.0]], requires_grad=True)  # duplicate rows
    for loss in (LF.rkd_loss(e, e.detach() * 2 + 1), LF.sp_loss(e, -e.detach())):
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(e.grad).all()
        e.grad = None
    f = torch.zeros(2, 3, 4, 4, requires_grad=True)  # all-zero attention map
    loss = LF.at_loss(f, torch.randn(2, 3, 4, 4))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(f.grad).all()


def test_bad_feature_inputs():
    with pytest.raises(UserInputError, match="must have 4 dimensions"):
        LF.at_loss(torch.randn(2, 8), torch.randn(2, 8))
    with pytest.raises(UserInputError, match="batch sizes differ \\(2 vs 3\\)"):
        LF.sp_loss(torch.randn(2, 8), torch.randn(3, 8))
    with pytest.raises(UserInputError, match="at least 2 dimensions"):
        LF.rkd_loss(torch.randn(4), torch.randn(4))
    with pytest.raises(UserInputError, match="resize"):
        LF.at_loss(torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2), resize="nearest")
