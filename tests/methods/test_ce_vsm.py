"""``ce-vsm``: a teacher trained on the views ERKT asks it to label — CE on VSM + CutMix, no teacher."""
import torch
import torch.nn.functional as F

from compress.data.vsm import VarianceSuppression
from compress.methods import METHODS, build_method
from compress.models import create_model

SIZE = 16


def _method(params):
    torch.manual_seed(0)
    return build_method("ce-vsm", create_model("cifar_resnet8", 4, 3), None, params, num_classes=4, image_size=SIZE,
                        in_chans=3)


def _seed(k):
    import numpy as np

    np.random.seed(k)
    torch.manual_seed(k)


def test_without_cutmix_it_is_plain_cross_entropy_on_the_batch_it_is_given():
    m = _method({"cutmix_p": 0.0})
    assert not METHODS.get("ce-vsm").requires_teacher
    x, y = torch.randn(8, 3, SIZE, SIZE), torch.arange(8) % 4
    out = m.training_step(x, y)
    assert torch.isclose(out.losses["ce"], F.cross_entropy(m.student(x), y), rtol=1e-6)
    assert out.logits is not None and torch.equal(out.targets, y)


def test_with_cutmix_the_loss_weights_both_labels_by_the_pasted_area_and_a_step_trains():
    m = _method({"cutmix_p": 1.0})
    x, y = torch.randn(8, 3, SIZE, SIZE), torch.arange(8) % 4
    seen = {}
    h = m.student.register_forward_pre_hook(lambda mod, inp: seen.__setitem__("x", inp[0].detach().clone()))
    _seed(3)
    out = m.training_step(x, y)
    h.remove()
    assert not torch.equal(seen["x"], x) and out.logits is None  # mixed: no single label per image
    _seed(3)
    mb = m.vsm.mix_batch(x, y)
    assert torch.equal(mb.images, seen["x"]) and 0 < float(mb.lam.min()) < 1
    logits = m.student(mb.images)
    by_hand = (mb.lam * F.cross_entropy(logits, mb.targets_a, reduction="none")
               + (1 - mb.lam) * F.cross_entropy(logits, mb.targets_b, reduction="none")).mean()
    assert torch.isclose(out.losses["ce"], by_hand, rtol=1e-5)
    before = [p.clone() for p in m.student.parameters()]
    opt = torch.optim.SGD(m.trainable_parameters(), lr=0.1)
    out.losses["ce"].backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, m.student.parameters()))


def test_its_per_sample_views_are_the_vsm_units_asked_for():
    vsm = _method({"hflip_p": 0.25, "rotation_degrees": 90.0}).train_transform(SIZE, 3)
    assert isinstance(vsm, VarianceSuppression)
    units = {n: p for n, p, _ in vsm.units}
    assert units["hflip"] == 0.25 and vsm.cfg.rotation_degrees == 90.0
