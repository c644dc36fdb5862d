"""Triplet, center, angular-margin / NSL and nuclear-norm losses against hand values and numpy."""
import math

import numpy as np
import pytest
import torch

from compress.errors import UserInputError
from compress.losses import functional as LF

EMB = np.array([[0.6, -0.2, 0.9], [0.1, 0.8, -0.3], [-0.5, 0.4, 0.7], [0.9, 0.1, 0.2]])
W = np.array([[1.0, 0.0, 0.2], [0.1, 1.0, -0.4], [-0.6, 0.3, 1.0]])
Y = np.array([0, 1, 2, 1])


def tt(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def np_angular(emb, w, y, m, tau):
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    wn = w / np.linalg.norm(w, axis=1, keepdims=True)
    cos = e @ wn.T
    total = 0.0
    for i, c in enumerate(y):
        logits = cos[i] / tau
        logits[c] = np.cos(np.arccos(cos[i, c]) + m) / tau
        total += -(logits[c] - np.log(np.sum(np.exp(logits))))
    return total / len(y)


GOLDEN = {"angular": 7.38864974, "nsl": 4.42173806}


def test_triplet_batch_hard_picks_hardest_pairs():
    # 1-D embeddings; class 2 has one sample, so it is only ever a negative
    emb = torch.tensor([[0.0], [1.0], [5.0], [6.0], [2.5], [-2.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2, 0])
    # per anchor (hardest pos, hardest neg): (2, 2.5) (3, 1.5) (1, 2.5) (1, 3.5) skip (3, 4.5)
    loss = LF.triplet_loss(emb, y, margin=2.0)
    assert loss.item() == pytest.approx((1.5 + 3.5 + 0.5 + 0.0 + 0.5) / 5, rel=1e-6)
    loss.backward()
    # active terms |a − p| − |a − n| for (a, p, n) = (0, −2, 2.5), (1, −2, 2.5), (5, 6, 2.5), (−2, 1, 2.5)
    expected = torch.tensor([[2.0], [3.0], [-2.0], [1.0], [-2.0], [-2.0]]) / 5
    assert torch.allclose(emb.grad, expected, atol=1e-6)


def test_triplet_squared_and_cosine_distances():
    emb = torch.tensor([[0.0], [1.0], [5.0], [6.0], [2.5], [-2.0]])
    y = torch.tensor([0, 0, 1, 1, 2, 0])
    # squared: a0 (4, 6.25) a1 (9, 2.25) a2 (1, 6.25) a3 (1, 12.25) a5 (9, 20.25), margin 1
    expected = (0 + 7.75 + 0 + 0 + 0) / 5
    assert LF.triplet_loss(emb, y, 1.0, "squared-euclidean").item() == pytest.approx(expected)
    e2 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # anchor 0: pos 2 at 1 − 1/√2, neg 1 at 1; anchor 2: pos 0 (1 − 1/√2), neg 1 (1 − 1/√2)
    got = LF.triplet_loss(e2, torch.tensor([0, 1, 0]), margin=0.5, distance="cosine").item()
    a0 = max(0.0, (1 - 1 / math.sqrt(2)) - 1 + 0.5)
    assert got == pytest.approx((a0 + 0.5) / 2, rel=1e-6)


def test_random_triplets_draw_from_the_classes_they_claim_and_never_exceed_batch_hard():
    # anchors 0, 1 (class 0) have one positive each and class 1 one sample: every triplet is forced
    emb = torch.tensor([[0.0], [1.0], [4.0]])
    y = torch.tensor([0, 0, 1])
    for seed in range(5):
        torch.manual_seed(seed)
        assert LF.triplet_loss(emb, y, 5.0, mining="random").item() == pytest.approx((2.0 + 3.0) / 2)
    # at 0, 1, 2, 10 with classes 0, 0, 1, 1, margin 3, per anchor (hard; random's other draw):
    # a0 1−2+3 = 2 (or 1−10+3 → 0), a1 1−1+3 = 3 (or 0), a2 8−1+3 = 10 (or 9), a3 8−9+3 = 2 (or 1)
    emb, y = torch.tensor([[0.0], [1.0], [2.0], [10.0]]), torch.tensor([0, 0, 1, 1])
    hard = LF.triplet_loss(emb, y, 3.0).item()
    draws = []
    for seed in range(40):
        torch.manual_seed(seed)
        draws.append(LF.triplet_loss(emb, y, 3.0, mining="random").item())
    assert max(draws) <= hard + 1e-6 and min(draws) < hard  # the random negative is sometimes the far one
    assert hard == pytest.approx((2 + 3 + 10 + 2) / 4)
    with pytest.raises(UserInputError, match="mining"):
        LF.triplet_loss(emb, y, mining="semi-hard")


def test_triplet_without_valid_anchor_is_zero_with_grad():
    emb = torch.randn(4, 3, requires_grad=True)
    for y in (torch.tensor([1, 1, 1, 1]), torch.tensor([0, 1, 2, 3])):
        loss = LF.triplet_loss(emb, y)
        loss.backward()
        assert loss.item() == 0.0 and emb.grad is not None


def test_center_loss_hand_value_and_grads():
    emb = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    centers = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 3.0]], requires_grad=True)
    loss = LF.center_loss(emb, torch.tensor([0, 2]), centers)
    assert loss.item() == pytest.approx(0.5 * (5 + 1) / 2)
    loss.backward()
    assert torch.allclose(emb.grad, torch.tensor([[0.5, 1.0], [0.0, 0.5]]))
    assert torch.allclose(centers.grad[1], torch.zeros(2))
    with pytest.raises(UserInputError, match="embedding width D = 2"):
        LF.center_loss(emb, torch.tensor([0, 1]), torch.zeros(3, 5))


def test_angular_margin_matches_numpy_golden():
    assert np_angular(EMB, W, Y, 0.5, 0.05) == pytest.approx(GOLDEN["angular"], rel=1e-6)
    got = LF.angular_margin_loss(tt(EMB), tt(W), torch.tensor(Y)).item()
    assert got == pytest.approx(np_angular(EMB, W, Y, 0.5, 0.05), rel=1e-10)
    assert LF.angular_margin_loss(tt(EMB), tt(W), torch.tensor(Y), 0.2, 0.1).item() == pytest.approx(
        np_angular(EMB, W, Y, 0.2, 0.1), rel=1e-10)


def test_angular_margin_reduces_to_nsl_at_zero_margin():
    assert np_angular(EMB, W, Y, 0.0, 0.05) == pytest.approx(GOLDEN["nsl"], rel=1e-6)
    nsl = LF.normalized_softmax_loss(tt(EMB), tt(W), torch.tensor(Y))
    am0 = LF.angular_margin_loss(tt(EMB), tt(W), torch.tensor(Y), margin=0.0)
    assert nsl.item() == pytest.approx(GOLDEN["nsl"], rel=1e-7)
    assert am0.item() == pytest.approx(nsl.item(), rel=1e-12)
    # a tiny margin is continuous with m = 0
    tiny = LF.angular_margin_loss(tt(EMB), tt(W), torch.tensor(Y), margin=1e-9)
    assert tiny.item() == pytest.approx(nsl.item(), rel=1e-6)
    assert LF.angular_margin_loss(tt(EMB), tt(W), torch.tensor(Y)).item() > nsl.item()


def test_angular_margin_theta_overflow_modes():
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    emb = torch.tensor([[-1.0, 0.0]])  # θ_y = π for class 0
    y = torch.tensor([0])
    paper = LF.angular_margin_logits(emb, w, y, margin=0.5, scale_tau=1.0)
    arc = LF.angular_margin_logits(emb, w, y, margin=0.5, scale_tau=1.0, theta_overflow="arcface")
    assert paper[0, 0].item() == pytest.approx(math.cos(math.pi + 0.5), abs=1e-5)
    assert arc[0, 0].item() == pytest.approx(-1.0 - 0.5 * math.sin(0.5), abs=1e-5)
    assert paper[0, 1].item() == pytest.approx(0.0, abs=1e-6)


def test_angular_margin_grads_finite_when_aligned():
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    emb = torch.tensor([[1.0, 0.0], [0.0, -1e4]], requires_grad=True)  # θ = 0 and θ = π
    loss = LF.angular_margin_loss(emb, w, torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all() and torch.isfinite(w.grad).all()


def test_nuclear_norm_identity_and_rank_one():
    eye = torch.eye(3, requires_grad=True)
    loss = LF.nuclear_norm_loss(eye)
    assert loss.item() == pytest.approx(-3.0)
    loss.backward()
    assert torch.allclose(eye.grad, -torch.eye(3), atol=1e-6)  # d‖P‖_*/dP = U Vᵀ = I
    assert LF.nuclear_norm_loss(torch.eye(3), "batch").item() == pytest.approx(-1.0)
    same_class = torch.zeros(4, 3)
    same_class[:, 1] = 1.0  # rank one, singular value ‖(1, 1, 1, 1)‖ = 2
    assert LF.nuclear_norm_loss(same_class).item() == pytest.approx(-2.0)
    assert LF.nuclear_norm_loss(same_class, "batch").item() == pytest.approx(-0.5)
    assert LF.nuclear_norm_loss(same_class, "singular-mean").item() == pytest.approx(-2.0 / 3)


def test_nuclear_norm_matches_numpy_svd():
    logits = np.array([[1.0, 0.2, -0.5], [0.3, 0.3, 0.9], [2.0, -1.0, 0.0], [0.0, 0.5, 0.1], [0.7, 0.7, 0.7]])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.linalg.svd(p, compute_uv=False).sum()
    assert LF.nuclear_norm_loss(tt(p)).item() == pytest.approx(expected, rel=1e-10)
    probs = torch.softmax(torch.tensor([[1e4, -1e4], [-1e4, 1e4], [0.0, 0.0]], requires_grad=True), dim=1)
    loss = LF.nuclear_norm_loss(probs)
    loss.backward()
    assert torch.isfinite(loss)


def test_bad_metric_inputs():
    with pytest.raises(UserInputError, match="apply softmax"):
        LF.nuclear_norm_loss(torch.tensor([[2.0, -1.0]]))
    with pytest.raises(UserInputError, match="normalization"):
        LF.nuclear_norm_loss(torch.eye(2), "frobenius")
    with pytest.raises(UserInputError, match="must be \\[num_classes, D\\]"):
        LF.angular_margin_loss(torch.randn(2, 3), torch.randn(4, 5), torch.tensor([0, 1]))
    with pytest.raises(UserInputError, match="outside \\[0, 3\\]"):
        LF.angular_margin_loss(torch.randn(2, 3), torch.randn(4, 3), torch.tensor([0, 4]))
    with pytest.raises(UserInputError, match="distance"):
        LF.triplet_loss(torch.randn(2, 3), torch.tensor([0, 1]), distance="manhattan")
    with pytest.raises(UserInputError, match="expected \\[2\\] class indices"):
        LF.triplet_loss(torch.randn(2, 3), torch.tensor([[0, 1]]))
