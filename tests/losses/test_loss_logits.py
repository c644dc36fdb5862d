"""KD, DKD, DIST, PSKD pair consistency and soft cross-entropy against numpy references / hand values."""
import math

import numpy as np
import pytest
import torch

from compress.errors import UserInputError
from compress.losses import functional as LF

S = np.array([[1.2, -0.3, 0.5, 2.0], [0.1, 0.4, -1.5, 0.0], [-0.7, 2.2, 0.3, 1.1]])
T = np.array([[2.5, -1.0, 0.0, 1.0], [0.3, 1.9, -0.5, -0.8], [-1.2, 1.0, 0.8, 0.4]])
Y = np.array([3, 1, 2])


def np_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def np_kd(s, t, tau):
    ps, pt = np_softmax(s / tau), np_softmax(t / tau)
    return tau**2 * np.mean(np.sum(pt * np.log(pt / ps), axis=1))


def np_dkd(s, t, y, alpha, beta, tau):
    total = 0.0
    for i in range(len(y)):
        ps, pt = np_softmax(s[i : i + 1] / tau)[0], np_softmax(t[i : i + 1] / tau)[0]
        bs = np.array([ps[y[i]], 1 - ps[y[i]]])
        bt = np.array([pt[y[i]], 1 - pt[y[i]]])
        tckd = np.sum(bt * np.log(bt / bs))
        keep = np.arange(len(ps)) != y[i]
        qs, qt = ps[keep] / ps[keep].sum(), pt[keep] / pt[keep].sum()
        nckd = np.sum(qt * np.log(qt / qs))
        total += alpha * tckd + beta * nckd
    return tau**2 * total / len(y)


def np_pearson_dist(a, b):
    a, b = a - a.mean(), b - b.mean()
    return 1 - (a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))


def np_dist(s, t, tau, beta, gamma):
    ps, pt = np_softmax(s / tau), np_softmax(t / tau)
    inter = np.mean([np_pearson_dist(ps[i], pt[i]) for i in range(ps.shape[0])])
    intra = np.mean([np_pearson_dist(ps[:, j], pt[:, j]) for j in range(ps.shape[1])])
    return beta * inter + gamma * intra


def tt(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


# golden values of the numpy references above on S, T, Y (stored so a change in either shows)
GOLDEN = {"kd_t4": 0.36062729, "dkd_default": 2.15966997, "dist_t2_b2_g2": 1.72660811}


def test_kd_hand_value_2x3():
    # row 0: student uniform, teacher (1/2, 1/4, 1/4): KL = ½ln(1.5) + ½ln(0.75) = ½ln(1.125); row 1: equal
    s = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    t = torch.tensor([[math.log(2.0), 0.0, 0.0], [1.0, 0.0, 0.0]])
    expected = 0.5 * math.log(1.125) / 2
    assert LF.kd_loss(s, t, temperature=1.0).item() == pytest.approx(expected, rel=1e-6)
    # same distributions at τ = 2 with doubled logits: τ² factor
    assert LF.kd_loss(2 * s, 2 * t, temperature=2.0).item() == pytest.approx(4 * expected, rel=1e-6)


def test_kd_matches_numpy_golden():
    assert np_kd(S, T, 4.0) == pytest.approx(GOLDEN["kd_t4"], rel=1e-6)
    got = LF.kd_loss(tt(S), tt(T), 4.0).item()
    assert got == pytest.approx(GOLDEN["kd_t4"], rel=1e-7)
    assert got == pytest.approx(np_kd(S, T, 4.0), rel=1e-12)


def test_dkd_matches_numpy_golden():
    assert np_dkd(S, T, Y, 1.0, 8.0, 4.0) == pytest.approx(GOLDEN["dkd_default"], rel=1e-6)
    got = LF.dkd_loss(tt(S), tt(T), torch.tensor(Y)).item()
    assert got == pytest.approx(GOLDEN["dkd_default"], rel=1e-7)
    assert got == pytest.approx(np_dkd(S, T, Y, 1.0, 8.0, 4.0), rel=1e-12)
    assert LF.dkd_loss(tt(S), tt(T), torch.tensor(Y), 0.5, 2.0, 1.0).item() == pytest.approx(
        np_dkd(S, T, Y, 0.5, 2.0, 1.0), rel=1e-9
    )


def test_dkd_reformulates_kd_per_sample():
    # Zhao et al. Eq. (1): KD = TCKD + (1 − p_t^T)·NCKD, sample by sample
    for i in range(3):
        s, t, y = tt(S[i : i + 1]), tt(T[i : i + 1]), torch.tensor(Y[i : i + 1])
        pt_gt = np_softmax(T[i : i + 1] / 4.0)[0, Y[i]]
        dkd = LF.dkd_loss(s, t, y, alpha=1.0, beta=1.0 - pt_gt, temperature=4.0)
        assert dkd.item() == pytest.approx(LF.kd_loss(s, t, 4.0).item(), rel=1e-9)


def test_dkd_soft_targets_use_dominant_class():
    soft = torch.tensor([[0.1, 0.0, 0.2, 0.7], [0.3, 0.6, 0.1, 0.0], [0.0, 0.4, 0.6, 0.0]], dtype=torch.float64)
    hard = LF.dkd_loss(tt(S), tt(T), torch.tensor(Y))
    assert LF.dkd_loss(tt(S), tt(T), soft).item() == pytest.approx(hard.item(), rel=1e-12)


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_dkd_finite_two_classes_and_extreme_logits(scale):
    s = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [0.5, 0.2]]) * scale
    t = torch.tensor([[-1.0, 1.0], [1.0, -1.0], [0.1, 0.9]]) * scale
    s.requires_grad_(True)
    mixed = torch.tensor([[0.6, 0.4], [0.5, 0.5], [0.0, 1.0]])
    for target in (torch.tensor([0, 1, 1]), mixed):
        loss = LF.dkd_loss(s, t, target)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(s.grad).all()
        s.grad = None


def test_dkd_extreme_logits_many_classes_finite():
    s = torch.tensor([[1e4, -1e4, 0.0, 5.0], [-1e4, -1e4, 1e4, 1e4]], requires_grad=True)
    t = torch.tensor([[-1e4, 1e4, 0.0, -5.0], [1e4, -1e4, -1e4, 1e4]])
    loss = LF.dkd_loss(s, t, torch.tensor([0, 2]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


def test_dist_matches_numpy_and_tau_squared_option():
    assert np_dist(S, T, 2.0, 2.0, 2.0) == pytest.approx(GOLDEN["dist_t2_b2_g2"], rel=1e-6)
    got = LF.dist_loss(tt(S), tt(T), temperature=2.0, beta=2.0, gamma=2.0)
    assert got.item() == pytest.approx(GOLDEN["dist_t2_b2_g2"], rel=1e-7)
    code = LF.dist_loss(tt(S), tt(T), temperature=2.0, beta=2.0, gamma=2.0, tau_squared=True)
    assert code.item() == pytest.approx(4 * GOLDEN["dist_t2_b2_g2"], rel=1e-7)
    assert LF.dist_loss(tt(S), tt(T), 1.0, 1.0, 0.0).item() == pytest.approx(np_dist(S, T, 1.0, 1.0, 0.0), rel=1e-9)


@pytest.mark.parametrize("fn", ["kd", "dist", "dkd"])
def test_zero_when_student_equals_teacher(fn):
    z = tt(S)
    loss = {"kd": lambda: LF.kd_loss(z, z), "dist": lambda: LF.dist_loss(z, z),
            "dkd": lambda: LF.dkd_loss(z, z, torch.tensor(Y))}[fn]()
    assert loss.item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("fn", ["kd", "dist", "dkd", "pair"])
def test_gradients_reach_student_only(fn):
    s, t = tt(S, grad=True), tt(T, grad=True)
    loss = {"kd": lambda: LF.kd_loss(s, t), "dist": lambda: LF.dist_loss(s, t),
            "dkd": lambda: LF.dkd_loss(s, t, torch.tensor(Y)),
            "pair": lambda: LF.pair_consistency_loss(t, s)}[fn]()
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_logit_losses_finite_two_classes_extreme(scale):
    s = (torch.tensor([[1.0, -1.0], [-1.0, 1.0], [0.3, 0.2]]) * scale).requires_grad_(True)
    t = torch.tensor([[-1.0, 1.0], [1.0, -1.0], [0.0, 1.0]]) * scale
    for loss in (LF.kd_loss(s, t), LF.dist_loss(s, t), LF.dist_loss(s, t, tau_squared=True)):
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(s.grad).all()
        s.grad = None


def test_pair_consistency_is_kd_from_detached_pair():
    s, pair = tt(S, grad=True), tt(T, grad=True)
    loss = LF.pair_consistency_loss(pair, s, temperature=4.0)
    assert loss.item() == pytest.approx(np_kd(S, T, 4.0), rel=1e-9)
    loss.backward()
    assert pair.grad is None


def test_soft_cross_entropy_hand_value_and_one_hot():
    logits = torch.tensor([[0.0, 0.0, 0.0], [math.log(3.0), 0.0, 0.0]])
    soft = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    # row 0: −log(1/3); row 1: −log(1/5)
    assert LF.soft_cross_entropy(logits, soft).item() == pytest.approx((math.log(3) + math.log(5)) / 2, rel=1e-6)
    y = torch.tensor(Y)
    one_hot = torch.nn.functional.one_hot(y, 4).double()
    assert LF.soft_cross_entropy(tt(S), one_hot).item() == pytest.approx(
        torch.nn.functional.cross_entropy(tt(S), y).item(), rel=1e-12)


def test_bad_inputs_raise_user_input_error():
    s, t = torch.randn(3, 4), torch.randn(3, 5)
    with pytest.raises(UserInputError, match="same \\[B, C\\] shape"):
        LF.kd_loss(s, t)
    with pytest.raises(UserInputError, match="must have 2 dimensions"):
        LF.dist_loss(torch.randn(3, 4, 2), torch.randn(3, 4, 2))
    with pytest.raises(UserInputError, match="temperature"):
        LF.kd_loss(s, s, temperature=0.0)
    with pytest.raises(UserInputError, match="outside \\[0, 3\\]"):
        LF.dkd_loss(s, s, torch.tensor([0, 1, 4]))
    with pytest.raises(UserInputError, match="expected \\[3\\] class indices"):
        LF.dkd_loss(s, s, torch.tensor([0, 1]))
    with pytest.raises(UserInputError, match="integer tensor"):
        LF.dkd_loss(s, s, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(UserInputError, match="at least 2 classes"):
        LF.dkd_loss(torch.randn(3, 1), torch.randn(3, 1), torch.tensor([0, 0, 0]))
    with pytest.raises(UserInputError, match="soft_targets must be >= 0"):
        LF.soft_cross_entropy(s, -torch.ones(3, 4))
    with pytest.raises(UserInputError, match="torch.Tensor"):
        LF.kd_loss(S, T)


def test_the_documented_defaults_are_the_ones_used():
    """τ 4 for KD and the PSKD pair term, τ 1 and β = γ = 1 for DIST (the papers' values)."""
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    assert LF.kd_loss(s, t).item() == LF.kd_loss(s, t, temperature=4.0).item() != LF.kd_loss(s, t, 8.0).item()
    assert LF.pair_consistency_loss(t, s).item() == LF.kd_loss(s, t, temperature=4.0).item()
    explicit = LF.dist_loss(s, t, temperature=1.0, beta=1.0, gamma=1.0, tau_squared=False).item()
    assert LF.dist_loss(s, t).item() == explicit
    for other in ({"temperature": 2.0}, {"beta": 2.0}, {"gamma": 2.0}):
        assert LF.dist_loss(s, t, **other).item() != explicit
