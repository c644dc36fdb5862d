"""HR-S²DML (Kang et al.): margin + high-rankness terms, unlabelled pool, baselines, kd-hr."""
import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from compress.errors import UserInputError
from compress.methods import build_method
from compress.models import create_model


def _model(c=3):
    return create_model("embed-cosine", num_classes=c, in_chans=1, backbone="cifar-resnet8", embedding_dim=8)


def _pool(n=10):
    return TensorDataset(torch.randn(n, 1, 16, 16), torch.zeros(n, dtype=torch.long))


def _np_margin_loss(emb, w, y, m, tau):
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    cos = e @ w.T
    logits = cos.copy()
    logits[np.arange(len(y)), y] = np.cos(np.arccos(cos[np.arange(len(y)), y]) + m)
    logits /= tau
    logits -= logits.max(1, keepdims=True)
    return float(-(logits[np.arange(len(y)), y] - np.log(np.exp(logits).sum(1))).mean())


@pytest.mark.parametrize("params, divisor", [({}, 5), ({"hr_normalization": "none"}, 1)])
def test_step_is_margin_plus_minus_nuclear_norm(params, divisor):
    """Default −‖P‖_*/B (B = 5 unlabelled images); the paper's Eq. 5 as printed with ``none``."""
    torch.manual_seed(0)
    m = build_method("hr-s2dml", _model(), None, params, num_classes=3, image_size=16, in_chans=1)
    m.attach_unlabeled(_pool(), batch_size=5, seed=1)
    m.on_epoch_start(0, 1)
    x, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 0])
    out = m.training_step(x, y)
    assert set(out.losses) == {"margin", "hr"}
    m.on_epoch_start(0, 1)  # same epoch → the same unlabelled batch again
    xu = m.next_unlabeled(torch.device("cpu"))
    with torch.no_grad():
        emb = m.student.embed(torch.cat([x, xu])).numpy()  # train-mode BN: same batch, same output
    w = m.student.prototypes.detach().numpy()
    assert float(out.losses["margin"]) == pytest.approx(_np_margin_loss(emb[:4], w, y.numpy(), 0.5, 0.05), rel=1e-4)
    cos = emb[4:] @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T / 0.05
    p = np.exp(cos - cos.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert float(out.losses["hr"]) == pytest.approx(-np.linalg.svd(p, compute_uv=False).sum() / divisor, rel=1e-4)


def test_prototypes_learn_and_pool_cycles():
    m = build_method("hr-s2dml", _model(), None, {"unlabeled_batch_size": 4}, num_classes=3, image_size=16, in_chans=1)
    m.attach_unlabeled(_pool(6), batch_size=4)
    before = m.student.prototypes.detach().clone()
    opt = torch.optim.SGD(m.trainable_parameters(), lr=0.1)
    for _ in range(3):  # 6 images, batches of 4 with drop_last: a new round every step
        out = m.training_step(torch.randn(3, 1, 16, 16), torch.tensor([0, 1, 2]))
        opt.zero_grad()
        sum(out.losses.values()).backward()
        opt.step()
    assert not torch.equal(before, m.student.prototypes.detach())
    assert m._pool_round == 3


def test_nsl_and_triplet_baselines():
    nsl = build_method("nsl", _model(), None, {}, num_classes=3, image_size=16, in_chans=1)
    out = nsl.training_step(torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 0]))
    assert set(out.losses) == {"margin"} and not nsl.needs_unlabeled and nsl.params.margin == 0
    trip = build_method("triplet-ml", _model(), None, {}, num_classes=3, image_size=16, in_chans=1)
    assert set(trip.training_step(torch.randn(4, 1, 16, 16), torch.tensor([0, 0, 1, 1])).losses) == {"triplet"}
    labels = np.repeat(np.arange(3), 4)
    assert all(len(b) == 8 for b in trip.batch_sampler(labels, 8, 0, 0))


def test_missing_pool_and_wrong_model():
    m = build_method("hr-s2dml", _model(), None, {}, num_classes=3, image_size=16, in_chans=1)
    with pytest.raises(UserInputError, match="--labeled-ratio"):
        m.training_step(torch.randn(2, 1, 16, 16), torch.tensor([0, 1]))
    with pytest.raises(UserInputError, match="embed-cosine"):
        build_method("hr-s2dml", create_model("cifar-resnet8", num_classes=3, in_chans=1), None, {},
                     num_classes=3, image_size=16, in_chans=1)


def test_kd_hr_distils_on_unlabelled_images():
    teacher = create_model("cifar-resnet8", num_classes=3, in_chans=1).eval()
    m = build_method("kd-hr", create_model("cifar-resnet8", num_classes=3, in_chans=1), teacher, {},
                     num_classes=3, image_size=16, in_chans=1)
    m.attach_unlabeled(_pool(), batch_size=4)
    out = m.training_step(torch.randn(3, 1, 16, 16), torch.tensor([0, 1, 2]))
    assert set(out.losses) == {"ce", "kd", "hr"} and out.logits.shape == (3, 3)
    assert float(out.losses["hr"]) < 0
