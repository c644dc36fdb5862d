"""JOC (Xiong et al.): P×K batches, loss terms against hand computations, centers learn."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compress.errors import UserInputError
from compress.losses.functional import triplet_loss
from compress.methods import build_method
from compress.methods.joc import pk_batches
from compress.models import create_model


def _model(c=3):
    return create_model("embed-bnneck", num_classes=c, in_chans=1, backbone="cifar-resnet8")


def test_pk_batches_have_positives_and_negatives():
    labels = np.repeat(np.arange(5), 7)
    batches = list(pk_batches(labels, batch_size=12, k=4, seed=0, epoch=0))
    assert len(batches) == 3  # 5 classes × 2 groups of K=4 (7 topped up to 8) dealt 3 at a time
    for b in batches:
        counts = np.bincount(labels[b], minlength=5)
        assert len(b) == 12 and sorted(counts[counts > 0]) == [4, 4, 4]
    assert list(pk_batches(labels, 12, 4, 0, 1)) != batches  # reshuffled per epoch
    with pytest.raises(UserInputError, match="at least 8"):
        pk_batches(labels, batch_size=6, k=4, seed=0, epoch=0)


def _batch_hard(f, y, margin):
    d = torch.cdist(f, f)
    same = y[:, None] == y[None]
    pos = d.masked_fill(~same | torch.eye(len(y), dtype=torch.bool), -1).amax(1)
    neg = d.masked_fill(same, 1e9).amin(1)
    return F.relu(pos - neg + margin).mean()


def test_joc_step_equals_softmax_plus_triplet_plus_center():
    torch.manual_seed(0)
    m = build_method("joc", _model(), None, {"mining": "hard"}, num_classes=3, image_size=16, in_chans=1)
    x, y = torch.randn(6, 1, 16, 16), torch.tensor([0, 0, 1, 1, 2, 2])
    out = m.training_step(x, y)
    assert set(out.losses) == {"softmax", "triplet", "center"}
    # train-mode BN: the same batch gives the same F_t again
    f_t, logits = m.student.neck_outputs(x)
    c = m.centers[y]
    assert torch.allclose(out.losses["softmax"], F.cross_entropy(logits, y), atol=1e-5)
    assert torch.allclose(out.losses["triplet"], _batch_hard(f_t, y, 0.3), atol=1e-4)
    assert torch.allclose(out.losses["center"], 0.0005 * 0.5 * ((f_t - c) ** 2).sum(1).mean(), atol=1e-6)


def test_the_default_triplets_are_the_papers_random_ones():
    """Xiong et al. sample each triplet from two random classes; batch-hard mining lost to it on AID."""
    torch.manual_seed(0)
    m = build_method("joc", _model(), None, {}, num_classes=3, image_size=16, in_chans=1)
    x, y = torch.randn(12, 1, 16, 16), torch.tensor([0, 1, 2] * 4)
    m.student.train()
    torch.manual_seed(5)
    drawn = m.training_step(x, y).losses["triplet"]
    f_t, _ = m.student.neck_outputs(x)
    torch.manual_seed(5)
    assert torch.allclose(drawn, triplet_loss(f_t, y, 0.3, mining="random"), atol=1e-5)
    assert not torch.allclose(drawn, _batch_hard(f_t, y, 0.3), atol=1e-3)  # random triplets are easier ones


def test_center_gradient_is_unscaled_and_centers_learn():
    m = build_method("joc", _model(), None, {}, num_classes=3, image_size=16, in_chans=1)
    x, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 0, 2, 2])
    out = m.training_step(x, y)
    out.losses["center"].backward()
    f_t = m.student.features(x).detach()  # train-mode BN: same batch → same features
    expect = torch.zeros_like(m.centers)
    for i in range(4):
        expect[y[i]] += (m.centers[y[i]].detach() - f_t[i]) / 4  # ∂(½·mean‖f−c‖²)/∂c, λ divided out
    assert torch.allclose(m.centers.grad, expect, atol=1e-5)
    assert m.centers.grad[1].abs().sum() == 0
    before = m.centers.detach().clone()
    torch.optim.SGD(m.trainable_parameters(), lr=0.5).step()
    assert not torch.equal(before[[0, 2]], m.centers.detach()[[0, 2]]) and torch.equal(before[1], m.centers.detach()[1])


@pytest.mark.parametrize("name,terms", [("joc-softmax", {"softmax"}), ("joc-triplet", {"triplet"}),
                                        ("joc-triplet-softmax", {"softmax", "triplet"})])
def test_ablation_variants(name, terms):
    m = build_method(name, _model(), None, {}, num_classes=3, image_size=16, in_chans=1)
    out = m.training_step(torch.randn(4, 1, 16, 16), torch.tensor([0, 0, 1, 1]))
    assert set(out.losses) == terms and (out.logits is None) == ("softmax" not in terms)
    assert not hasattr(m, "centers")


def test_joc_needs_bnneck_and_valid_params():
    plain = create_model("cifar-resnet8", num_classes=3, in_chans=1)
    with pytest.raises(UserInputError, match="embed-bnneck"):
        build_method("joc", plain, None, {}, num_classes=3, image_size=16, in_chans=1)
    with pytest.raises(UserInputError, match="variant"):
        build_method("joc", _model(), None, {"variant": "center"}, num_classes=3, image_size=16, in_chans=1)


def test_joc_evaluate_reports_retrieval(tmp_path):
    from compress.data.bundle import DataConfig, build_data
    from tests.conftest import write_folder

    data = build_data(DataConfig(data=str(write_folder(tmp_path / "d", bands=1)), image_size=16, train_ratio=0.5,
                                  val_fraction=0))
    m = build_method("joc", _model(), None, {}, num_classes=3, image_size=16, in_chans=1)
    score, metrics, _ = m.evaluate(data.test, data.class_names, torch.device("cpu"))
    assert score == metrics["map"] and 0 < score <= 1 and {"oa", "map_at_r", "p@1"} <= set(metrics)
