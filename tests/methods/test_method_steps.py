"""Every distillation method takes one real optimiser step on CPU and changes only the student."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compress.errors import UserInputError
from compress.losses.functional import dist_loss, dkd_loss, kd_loss, pair_consistency_loss
from compress.methods import build_method
from compress.models import create_model

METHODS = ["kd", "dkd", "dist", "at", "sp", "rkd", "fitnet", "pskd", "erkt"]
NUM_CLASSES, SIZE = 4, 16


def _pair(seed=0):
    torch.manual_seed(seed)
    return create_model("cifar_resnet8", NUM_CLASSES, 3), create_model("cifar_resnet14", NUM_CLASSES, 3)


def _method(name, params=None, seed=0):
    s, t = _pair(seed)
    return build_method(name, s, t, params or {}, num_classes=NUM_CLASSES, image_size=SIZE, in_chans=3)


def _batch(name, n=8):
    x = torch.randn(n, 3, SIZE, SIZE)
    y = torch.arange(n) % NUM_CLASSES
    if name == "pskd":  # anchors then same-class partners, the layout of its sampler
        x = torch.cat([x, torch.randn(n, 3, SIZE, SIZE)])
        y = torch.cat([y, y])
    return x, y


@pytest.mark.parametrize("name", METHODS)
def test_one_step_changes_only_the_student(name):
    m = _method(name)
    teacher_before = {k: v.clone() for k, v in m.teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in m.student.state_dict().items()}
    teacher_ids = {id(p) for p in m.teacher.parameters()}
    params = list(m.trainable_parameters())
    assert params and not any(id(p) in teacher_ids for p in params)
    opt = torch.optim.SGD(params, lr=0.1)
    m.train()
    m.on_epoch_start(5, 10)
    x, y = _batch(name)
    out = m.training_step(x, y)
    loss = sum(out.losses.values())
    assert torch.isfinite(loss) and loss.item() > 0
    opt.zero_grad()
    loss.backward()
    opt.step()
    for k, v in m.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), f"teacher tensor {k} changed"
    assert all(p.grad is None for p in m.teacher.parameters())
    changed = [k for k, v in m.student.state_dict().items() if not torch.equal(v, student_before[k])]
    assert any(k.endswith("weight") for k in changed)
    assert not any(k.startswith("student.") for k in m.extra_state_dict())


def test_fitnet_owns_a_regressor_that_learns():
    m = _method("fitnet", {"student_layer": "layer2", "teacher_layer": "layer3"})
    assert m.regressor[0].weight.shape == (64, 32, 1, 1)  # resnet8 layer2: 32 ch → resnet14 layer3: 64 ch
    assert "regressor.0.weight" in m.extra_state_dict()
    before = m.regressor[0].weight.detach().clone()
    opt = torch.optim.SGD(m.trainable_parameters(), lr=0.1)
    x, y = _batch("fitnet")
    sum(m.training_step(x, y).losses.values()).backward()
    opt.step()
    assert not torch.equal(before, m.regressor[0].weight)


def test_dkd_warmup_factor_scales_the_term():
    from compress.methods.dkd import warmup_factor

    assert [warmup_factor(e, 4) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0
    m = _method("dkd", {"warmup_epochs": 20})
    m.eval()  # BN on running stats: the recomputation below sees identical logits
    x, y = _batch("dkd")
    m.on_epoch_start(1, 100)
    out = m.training_step(x, y)
    with torch.no_grad():
        raw = dkd_loss(m.student(x), m.teacher(x), y, alpha=1.0, beta=2.0, temperature=4.0)
    assert out.losses["dkd"].item() == pytest.approx(raw.item() * 2 / 20, rel=1e-5)


def test_erkt_loss_is_ratio_weighted_ce_plus_dist_without_cutmix():
    m = _method("erkt", {"cutmix_p": 0.0, "ratio": 0.5})
    m.eval()
    x, y = _batch("erkt")
    out = m.training_step(x, y)
    with torch.no_grad():
        s, t = m.student(x), m.teacher(x)
    assert out.losses["ce"].item() == pytest.approx(0.5 * F.cross_entropy(s, y).item(), rel=1e-5)
    expected = 1.5 * dist_loss(s, t, temperature=2.0, beta=2.0, gamma=2.0).item()
    assert out.losses["dist"].item() == pytest.approx(expected, rel=1e-5)
    assert out.logits is not None  # unmixed batch: train accuracy is meaningful


def test_erkt_feeds_the_same_cutmix_batch_to_teacher_and_student():
    m = _method("erkt", {"cutmix_p": 1.0})
    seen = {}
    hs = m.student.register_forward_pre_hook(lambda mod, inp: seen.__setitem__("s", inp[0].detach().clone()))
    ht = m.teacher.register_forward_pre_hook(lambda mod, inp: seen.__setitem__("t", inp[0].detach().clone()))
    x, y = _batch("erkt")
    torch.manual_seed(3)
    out = m.training_step(x, y)
    hs.remove()
    ht.remove()
    assert torch.equal(seen["s"], seen["t"])
    assert not torch.equal(seen["s"], x)  # CutMix fired (p = 1)
    assert out.logits is None  # mixed labels: no single target per image


def test_erkt_train_transform_is_the_configured_vsm():
    from compress.data.vsm import VarianceSuppression

    m = _method("erkt", {"hflip_p": 0.25})
    vsm = m.train_transform(SIZE, 3)
    assert isinstance(vsm, VarianceSuppression)
    assert dict((n, p) for n, p, _ in vsm.units)["hflip"] == 0.25


def test_pskd_loss_terms_follow_the_paper():
    from compress.data.mixing import different_class_partners, mixup, sample_beta

    m = _method("pskd")
    m.eval()
    x, y = _batch("pskd", n=6)
    torch.manual_seed(11)
    np.random.seed(11)
    out = m.training_step(x, y)
    xa, xp, ya = x[:6], x[6:], y[:6]
    torch.manual_seed(11)
    np.random.seed(11)
    index, valid = different_class_partners(ya)
    lam = sample_beta(0.1)
    with torch.no_grad():
        s, sp = m.student(xa), m.student(xp)
        mb = mixup(xa, ya, lam, index)
        smix, tmix = m.student(mb.images), m.teacher(mb.images)
    assert bool(valid.all()) and bool((ya[index] != ya).all())
    assert out.losses["ce"].item() == pytest.approx(0.8 * F.cross_entropy(s, ya).item(), rel=1e-5)
    assert out.losses["pair"].item() == pytest.approx(0.1 * pair_consistency_loss(sp, s, 4.0).item(), rel=1e-5,
                                                      abs=1e-7)
    mix_ce = lam * F.cross_entropy(smix, ya) + (1 - lam) * F.cross_entropy(smix, ya[index])
    assert out.losses["mix_ce"].item() == pytest.approx(mix_ce.item(), rel=1e-5)
    assert out.losses["mix_kd"].item() == pytest.approx(kd_loss(smix, tmix, 4.0).item(), rel=1e-5, abs=1e-7)
    assert torch.equal(out.targets, ya) and out.logits.shape == (6, NUM_CLASSES)


def test_pskd_rejects_unpaired_batches_and_supplies_its_sampler():
    from compress.data.samplers import SameClassPairSampler

    m = _method("pskd")
    with pytest.raises(UserInputError, match="same-class partners"):
        m.training_step(torch.randn(4, 3, SIZE, SIZE), torch.tensor([0, 1, 2, 3]))
    assert isinstance(m.batch_sampler([0, 1, 0, 1], 2, 0, 0), SameClassPairSampler)


def test_pskd_single_class_batch_has_zero_mix_term():
    m = _method("pskd")
    x = torch.randn(4, 3, SIZE, SIZE)
    out = m.training_step(x, torch.zeros(4, dtype=torch.long))
    assert out.losses["mix_ce"].item() == 0.0 and out.losses["mix_kd"].item() == 0.0


@pytest.mark.parametrize("name", ["at", "sp", "rkd", "fitnet"])
def test_feature_methods_refuse_an_ensemble_teacher(name):
    from compress.models.ensemble import WeightedEnsemble

    s, t = _pair()
    ens = WeightedEnsemble([t, create_model("cifar_resnet8", NUM_CLASSES, 3)], [0.5, 0.5])
    with pytest.raises(UserInputError, match="weighted ensemble"):
        build_method(name, s, ens, {}, num_classes=NUM_CLASSES, image_size=SIZE, in_chans=3)


def test_logit_methods_accept_an_ensemble_teacher():
    from compress.models.ensemble import WeightedEnsemble

    s, t = _pair()
    ens = WeightedEnsemble([t, create_model("cifar_resnet8", NUM_CLASSES, 3)], [0.3, 0.7])
    m = build_method("erkt", s, ens, {}, num_classes=NUM_CLASSES, image_size=SIZE, in_chans=3)
    x, y = _batch("erkt")
    assert torch.isfinite(sum(m.training_step(x, y).losses.values()))


def test_unknown_and_bad_params_are_rejected():
    with pytest.raises(UserInputError, match="Unknown key"):
        _method("dkd", {"alhpa": 1.0})
    with pytest.raises(UserInputError, match="ratio R"):
        _method("erkt", {"ratio": 2.5})
    with pytest.raises(UserInputError, match="probability"):
        _method("erkt", {"hflip_p": 1.5})


def test_explicit_layers_must_pair_up():
    with pytest.raises(UserInputError, match="same number"):
        _method("at", {"student_layers": ["layer1", "layer2"], "teacher_layers": ["layer3"]})
    m = _method("at", {"student_layers": ["layer3"], "teacher_layers": ["layer3"]})
    assert m.s_layers == ["layer3"] and m.t_layers == ["layer3"]
    assert _method("sp").s_layers == ["layer3"]  # SP defaults to the last stage


def test_at_uses_the_papers_norm_scaled_by_map_size():
    from compress.losses.functional import at_loss

    x, y = _batch("at")
    for distance in ("norm", "squared-mean"):
        m = _method("at", {"student_layers": ["layer3"], "teacher_layers": ["layer3"], "distance": distance})
        out = m.training_step(x, y)
        _, (ft,) = m.teacher_taps(x)
        _, (fs,) = m.student_taps(x)
        hw = ft.shape[-2] * ft.shape[-1] if distance == "norm" else 1
        expected = 500.0 * at_loss(fs, ft, distance=distance) / hw
        assert out.losses["at"].item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(UserInputError, match="at distance must be"):
        _method("at", {"distance": "l1"})
