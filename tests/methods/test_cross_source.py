"""Cross-source distillation (Xiong et al. stage 2): G from F, input adaptation, frozen stages."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compress.errors import UserInputError
from compress.methods import build_method
from compress.methods.cross_source import adapt_input_kernel, frozen_modules, paper_freeze_point
from compress.models import create_model


def test_replicate_equals_copying_the_pan_band_into_every_channel():
    w = torch.randn(8, 4, 3, 3)
    pan = torch.randn(2, 1, 10, 10)
    w1 = adapt_input_kernel(w, 1, "replicate")
    assert torch.allclose(F.conv2d(pan, w1), F.conv2d(pan.repeat(1, 4, 1, 1), w), atol=1e-5)
    assert torch.allclose(adapt_input_kernel(w, 1, "average"), w1, atol=1e-6)  # one band: both are the sum
    w2 = adapt_input_kernel(w, 2, "replicate")  # band i of source 1 reads band i mod 2
    assert torch.allclose(w2[:, 0], w[:, 0] + w[:, 2]) and torch.allclose(w2[:, 1], w[:, 1] + w[:, 3])
    w6 = adapt_input_kernel(w[:, :3], 6, "replicate")
    assert torch.allclose(w6[:, 3:], w[:, :3] * 0.5) and adapt_input_kernel(w, 2, "reinit") is None
    avg = adapt_input_kernel(w, 3, "average")
    assert torch.allclose(avg[:, 2], w.mean(1) * 4 / 3, atol=1e-6)


def _pair():
    torch.manual_seed(0)
    f = create_model("embed-bnneck", num_classes=3, in_chans=4, backbone="cifar-resnet8").eval()
    f.train()
    with torch.no_grad():  # give F non-trivial BN statistics
        f(torch.randn(8, 4, 8, 8) * 2 + 1)
    f.eval()
    g = create_model("embed-bnneck", num_classes=3, in_chans=1, backbone="cifar-resnet8")
    return f, g


def test_g_starts_from_f_and_only_early_layers_learn():
    f, g = _pair()
    m = build_method("cross-source", g, f, {}, num_classes=3, image_size=16, in_chans=1)
    fs, gs = f.state_dict(), g.state_dict()
    assert torch.allclose(gs["backbone.conv1.weight"], fs["backbone.conv1.weight"].sum(1, keepdim=True))
    assert all(torch.equal(gs[k], v) for k, v in fs.items() if k != "backbone.conv1.weight")
    assert m.frozen[0] == "backbone.layer2" and "neck" in m.frozen and "classifier" in m.frozen
    before = {k: v.clone() for k, v in g.state_dict().items()}
    f_before = {k: v.clone() for k, v in f.state_dict().items()}
    opt = torch.optim.SGD(m.trainable_parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    m.train()
    x1, x2 = torch.randn(4, 4, 8, 8), torch.randn(4, 1, 16, 16)
    for _ in range(2):
        out = m.training_step((x1, x2), torch.tensor([0, 1, 2, 0]))
        opt.zero_grad()
        out.losses["mse"].backward()
        opt.step()
    after = g.state_dict()
    for k, v in before.items():
        frozen = k.startswith(("backbone.layer2", "backbone.layer3", "neck", "classifier"))
        assert torch.equal(after[k], v) == frozen or k.endswith("num_batches_tracked") and not frozen, k
    assert all(torch.equal(f.state_dict()[k], v) for k, v in f_before.items())
    out = m.training_step((x1, x2), torch.tensor([0, 1, 2, 0]))
    with torch.no_grad():  # Eq. 5 per pair, averaged over the batch (train-mode BN: same batch, same output)
        expect = ((g.embed(x2) - f.embed(x1)) ** 2).sum(1).mean()
    assert float(out.losses["mse"]) == pytest.approx(float(expect), rel=1e-5)


def test_reinit_and_bad_freeze_point():
    f, g = _pair()
    fresh = g.state_dict()["backbone.conv1.weight"].clone()
    build_method("cross-source", g, f, {"input_adapt": "reinit", "freeze_from": "layer3"}, num_classes=3,
                 image_size=16, in_chans=1)
    assert torch.equal(g.state_dict()["backbone.conv1.weight"], fresh)
    assert g.backbone.layer2[0].conv1.weight.requires_grad and not g.backbone.layer3[0].conv1.weight.requires_grad
    with pytest.raises(UserInputError, match="layer1, layer2, layer3, avgpool, fc, or auto"):
        frozen_modules(g, "layer4")
    with pytest.raises(UserInputError, match="teacher"):
        build_method("cross-source", g, None, {}, num_classes=3, image_size=16, in_chans=1)


def test_unpaired_batch_is_rejected_and_evaluate_is_cross_source(tmp_path):
    from compress.data.paired import build_paired_data
    from tests.conftest import write_folder

    f, g = _pair()
    m = build_method("cross-source", g, f, {}, num_classes=3, image_size=16, in_chans=1)
    with pytest.raises(UserInputError, match="paired"):
        m.training_step(torch.randn(2, 1, 16, 16), torch.tensor([0, 1]))
    s1 = write_folder(tmp_path / "a", per_class=4, size=8, bands=4, fmt="tif")
    s2 = write_folder(tmp_path / "b", per_class=4, size=16, bands=1)
    p = build_paired_data(s1, s2, train_ratio=0.5)
    score, metrics, _ = m.evaluate(p.test, p.class_names, torch.device("cpu"))
    assert score == pytest.approx((metrics["map_s1_to_s2"] + metrics["map_s2_to_s1"]) / 2)
    assert np.isfinite(metrics["mse"])


@pytest.mark.parametrize("backbone, stage", [("resnet18", "layer2"), ("cifar-resnet8", "layer2"),
                                             ("efficientnet-lite0", "blocks.2"), ("mobilenet_v2", "features.4"),
                                             ("mobilenetv3_small_100", "blocks.1")])
def test_auto_freeze_point_is_the_first_stride_8_stage(backbone, stage):
    """The paper's Conv3 (ResNet layer2, output stride 8) carried to other backbones; auto is the default."""
    g = create_model("embed-bnneck", num_classes=3, in_chans=1, backbone=backbone)
    assert paper_freeze_point(g) == stage
    assert frozen_modules(g, "auto")[0] == f"backbone.{stage}"
    f = create_model("embed-bnneck", num_classes=3, in_chans=4, backbone=backbone).eval()
    m = build_method("cross-source", g, f, {}, num_classes=3, image_size=32, in_chans=1)
    assert m.frozen[0] == f"backbone.{stage}"
