"""Each logit method's loss terms against a hand computation (NumPy, float64) on fixed logits.

The student and teacher are linear maps of the input, so the logits each one produces are known:
the student's logits ARE the input (identity weights, gradients flow), the teacher's are a fixed
matrix times it. A method that swaps the two, detaches the wrong one, drops a weight or a τ² or
uses another temperature changes a value or a gradient below.
"""
import numpy as np
import pytest
import torch
from torch import nn

from compress.methods import build_method

B, K = 6, 5
RNG = np.random.default_rng(7)
S = RNG.normal(0.0, 2.0, (B, K))  # student logits
W_T = RNG.normal(0.0, 1.0, (K, K)) + 2.0 * np.eye(K)  # teacher logits = S @ W_T.T
Y = np.array([0, 1, 2, 3, 4, 0])


class Linear(nn.Module):
    """logits = x.flatten(1) @ W.T for x of shape [B, K, 1, 1]."""

    def __init__(self, w: np.ndarray) -> None:
        super().__init__()
        self.fc = nn.Linear(K, K, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor(w, dtype=torch.float64))
        self.double()

    def forward(self, x):
        return self.fc(x.flatten(1))


def _step(name, params=None, epoch=0, epochs=10):
    m = build_method(name, Linear(np.eye(K)), Linear(W_T), params or {}, num_classes=K, image_size=2, in_chans=K)
    m.on_epoch_start(epoch, epochs)
    x = torch.tensor(S.reshape(B, K, 1, 1), requires_grad=True)
    out = m.training_step(x, torch.tensor(Y))
    losses = {k: v for k, v in out.losses.items()}
    sum(losses.values()).backward()
    return {k: v.item() for k, v in losses.items()}, x.grad.reshape(B, K).numpy()


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _onehot(y):
    return np.eye(K)[y]


def _ce(s, y):
    return float(-np.log(_softmax(s)[np.arange(len(y)), y]).mean())


def _kl(q, p):  # KL(q ‖ p) per row
    return (q * (np.log(q) - np.log(p))).sum(axis=1)


T = S @ W_T.T


def test_kd_terms_weights_and_gradient():
    a, tau = 0.5, 4.0
    losses, grad = _step("kd")
    q, p = _softmax(T / tau), _softmax(S / tau)
    assert losses["ce"] == pytest.approx((1 - a) * _ce(S, Y), rel=1e-6)
    assert losses["kd"] == pytest.approx(a * tau**2 * _kl(q, p).mean(), rel=1e-6)
    # d/ds of (1-α)·CE + α·τ²·KL(q ‖ p(s/τ)): the teacher is a constant, the student's logits move
    expected = (1 - a) * (_softmax(S) - _onehot(Y)) / B + a * tau * (p - q) / B
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-8)


def test_kd_alpha_and_temperature_are_the_ones_asked_for():
    losses, _ = _step("kd", {"alpha": 0.9, "temperature": 2.0})
    assert losses["ce"] == pytest.approx(0.1 * _ce(S, Y), rel=1e-6)
    assert losses["kd"] == pytest.approx(0.9 * 4.0 * _kl(_softmax(T / 2), _softmax(S / 2)).mean(), rel=1e-6)


def _dkd(s, t, y, alpha, beta, tau):
    ps, pt = _softmax(s / tau), _softmax(t / tau)
    rows = np.arange(len(y))
    bs = np.stack([ps[rows, y], 1 - ps[rows, y]], axis=1)
    bt = np.stack([pt[rows, y], 1 - pt[rows, y]], axis=1)
    tckd = _kl(bt, bs)
    mask = _onehot(y).astype(bool)
    ns = np.where(mask, -np.inf, s / tau)
    nt = np.where(mask, -np.inf, t / tau)
    qs = np.exp(ns - ns.max(1, keepdims=True))
    qs /= qs.sum(1, keepdims=True)
    qt = np.exp(nt - nt.max(1, keepdims=True))
    qt /= qt.sum(1, keepdims=True)
    keep = ~mask
    nckd = np.array([(qt[i, keep[i]] * (np.log(qt[i, keep[i]]) - np.log(qs[i, keep[i]]))).sum() for i in rows])
    return float(tau**2 * (alpha * tckd + beta * nckd).mean())


@pytest.mark.parametrize("epoch, factor", [(0, 0.05), (4, 0.25), (30, 1.0)])
def test_dkd_terms_follow_the_warmup(epoch, factor):
    losses, _ = _step("dkd", epoch=epoch, epochs=40)
    assert losses["ce"] == pytest.approx(_ce(S, Y), rel=1e-6)
    assert losses["dkd"] == pytest.approx(factor * _dkd(S, T, Y, 1.0, 2.0, 4.0), rel=1e-7)


def _pearson_rows(a, b):
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def _dist(s, t, tau, beta, gamma):
    ps, pt = _softmax(s / tau), _softmax(t / tau)
    inter = 1 - _pearson_rows(ps, pt).mean()
    intra = 1 - _pearson_rows(ps.T, pt.T).mean()
    return float(beta * inter + gamma * intra)


def test_dist_terms():
    losses, _ = _step("dist")
    assert losses["ce"] == pytest.approx(_ce(S, Y), rel=1e-6)
    assert losses["dist"] == pytest.approx(_dist(S, T, 1.0, 1.0, 1.0), rel=1e-6)
    losses, _ = _step("dist", {"beta": 2.0, "gamma": 0.5, "temperature": 3.0, "tau_squared": True})
    assert losses["dist"] == pytest.approx(9.0 * _dist(S, T, 3.0, 2.0, 0.5), rel=1e-6)


def test_erkt_terms_without_cutmix():
    losses, _ = _step("erkt", {"cutmix_p": 0.0, "ratio": 0.8})
    assert losses["ce"] == pytest.approx(0.8 * _ce(S, Y), rel=1e-6)
    assert losses["dist"] == pytest.approx(1.2 * _dist(S, T, 2.0, 2.0, 2.0), rel=1e-6)


def test_ce_with_label_smoothing():
    losses, grad = _step("ce", {"label_smoothing": 0.1})
    target = 0.9 * _onehot(Y) + 0.1 / K
    expected = float(-(target * np.log(_softmax(S))).sum(1).mean())
    assert losses == {"ce": pytest.approx(expected, rel=1e-9)}
    np.testing.assert_allclose(grad, (_softmax(S) - target) / B, rtol=1e-5, atol=1e-8)


def test_pskd_terms_with_a_fixed_mixup(monkeypatch):
    """Anchors S[:3], same-class partners S[3:]; λ 0.3 and the partners of another class fixed, the third
    anchor without one (masked out of L_mix)."""
    import compress.methods.pskd as pskd

    y = np.array([0, 1, 2])
    x = S.copy()
    x[3:] = S[3:] + 0.5  # the partners: other images of the same classes
    lam, index, valid = 0.3, np.array([1, 2, 2]), np.array([True, True, False])
    monkeypatch.setattr(pskd, "sample_beta", lambda a: lam)
    monkeypatch.setattr(pskd, "different_class_partners",
                        lambda t: (torch.tensor(index), torch.tensor(valid)))
    m = build_method("pskd", Linear(np.eye(K)), Linear(W_T), {"alpha": 0.2, "beta": 0.7, "gamma": 0.8},
                     num_classes=K, image_size=2, in_chans=K)
    m.on_epoch_start(0, 10)
    out = m.training_step(torch.tensor(x.reshape(B, K, 1, 1)), torch.tensor(np.concatenate([y, y])))
    got = {k: v.item() for k, v in out.losses.items()}
    a, p = x[:3], x[3:]
    tau = 4.0
    s_mix = lam * a + (1 - lam) * a[index]
    t_mix = s_mix @ W_T.T
    ce_mix = np.array([lam * _ce(s_mix[i:i + 1], y[i:i + 1]) + (1 - lam) * _ce(s_mix[i:i + 1], y[index][i:i + 1])
                       for i in range(3)])
    kl = _kl(_softmax(t_mix / tau), _softmax(s_mix / tau)) * tau ** 2
    assert got["ce"] == pytest.approx(0.8 * _ce(a, y), rel=1e-6)
    assert got["pair"] == pytest.approx(0.2 * tau ** 2 * _kl(_softmax(p / tau), _softmax(a / tau)).mean(), rel=1e-6)
    assert got["mix_ce"] == pytest.approx(0.7 * ce_mix[valid].mean(), rel=1e-6)
    assert got["mix_kd"] == pytest.approx(0.7 * kl[valid].mean(), rel=1e-6)
    torch.testing.assert_close(out.logits, torch.tensor(a))
    assert out.targets.tolist() == [0, 1, 2]


def test_pskd_with_no_anchor_of_another_class_has_no_mix_term(monkeypatch):
    import compress.methods.pskd as pskd

    monkeypatch.setattr(pskd, "sample_beta", lambda a: 0.5)
    m = build_method("pskd", Linear(np.eye(K)), Linear(W_T), {}, num_classes=K, image_size=2, in_chans=K)
    m.on_epoch_start(0, 10)
    out = m.training_step(torch.tensor(S.reshape(B, K, 1, 1)), torch.tensor([3] * B))
    assert out.losses["mix_ce"].item() == 0.0 and out.losses["mix_kd"].item() == 0.0  # n clamps to 1, not 0/0


@pytest.mark.parametrize("targets", [[0, 1, 0, 1, 0], [0, 1, 2, 0, 1, 0], []])
def test_pskd_refuses_a_batch_that_is_not_anchors_then_partners(targets):
    from compress.errors import UserInputError
    from compress.methods.pskd import PairwiseSimilarityKD

    t = torch.tensor(targets, dtype=torch.long)
    with pytest.raises(UserInputError, match="pskd needs batches of anchors followed by same-class partners"):
        PairwiseSimilarityKD.split_pairs(torch.zeros(len(targets), 1, 1, 1), t)


@pytest.mark.parametrize("cutmix_p", [0.0, 1.0])
def test_erkt_reports_training_accuracy_only_on_unmixed_batches(cutmix_p):
    torch.manual_seed(0)
    pooled = [nn.Sequential(nn.AdaptiveAvgPool2d(1), Linear(w)) for w in (np.eye(K), W_T)]
    m = build_method("erkt", *pooled, {"cutmix_p": cutmix_p}, num_classes=K, image_size=16, in_chans=K)
    m.on_epoch_start(0, 10)
    out = m.training_step(torch.tensor(np.tile(S.reshape(B, K, 1, 1), (1, 1, 16, 16))), torch.tensor(Y))
    if cutmix_p:
        assert out.logits is None and out.targets is None  # mixed labels: no top-1 to count
    else:
        assert out.targets.tolist() == Y.tolist() and out.logits.shape == (B, K)
