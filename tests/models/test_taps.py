"""FeatureTaps (forward hooks by module path), default feature layers, pooled pre-logits features."""
import pytest
import torch

from compress.errors import UserInputError
from compress.models import (FeatureTaps, create_model, default_feature_layers, forward_features_pooled,
                             forward_with_pooled)


@pytest.fixture(scope="module")
def tv_resnet18():
    torch.manual_seed(0)
    return create_model("torchvision:resnet18", 3).eval()


def test_taps_capture_stage_outputs(tv_resnet18):
    m = tv_resnet18
    x = torch.randn(2, 3, 64, 64)
    with FeatureTaps(m, ["layer1", "layer2", "layer3", "layer4", "layer2.1.bn2"]) as taps, torch.no_grad():
        m(x)
    shapes = {k: tuple(v.shape) for k, v in taps.features.items()}
    assert shapes == {"layer1": (2, 64, 16, 16), "layer2": (2, 128, 8, 8), "layer3": (2, 256, 4, 4),
                      "layer4": (2, 512, 2, 2), "layer2.1.bn2": (2, 128, 8, 8)}
    with torch.no_grad():
        expected = m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x)))))
    assert torch.allclose(taps["layer1"], expected)


def test_unknown_path_lists_close_matches(tv_resnet18):
    with pytest.raises(UserInputError, match=r"ResNet has no module 'layr1'\. Close matches: layer1"):
        FeatureTaps(tv_resnet18, ["layr1"])
    with pytest.raises(UserInputError, match="given twice: layer1"):
        FeatureTaps(tv_resnet18, ["layer1", "layer1"])
    with pytest.raises(UserInputError, match="at least one"):
        FeatureTaps(tv_resnet18, [])


def test_clear_remove_and_context_manager(tv_resnet18):
    m = tv_resnet18
    taps = FeatureTaps(m, "layer4")
    with torch.no_grad():
        m(torch.randn(1, 3, 32, 32))
    assert list(taps.features) == ["layer4"]
    taps.clear()
    assert taps.features == {}
    with pytest.raises(KeyError, match="run a forward first"):
        taps["layer4"]
    taps.remove()
    assert not taps.active and len(m.layer4._forward_hooks) == 0
    with torch.no_grad():
        m(torch.randn(1, 3, 32, 32))
    assert taps.features == {}
    with FeatureTaps(m, ["layer3"]) as inner, torch.no_grad():
        m(torch.randn(1, 3, 32, 32))
    assert len(m.layer3._forward_hooks) == 0 and inner["layer3"].shape == (1, 256, 2, 2)  # readable after exit


def test_gradients_flow_unless_detached():
    m = create_model("cifar-resnet8", 2)
    x = torch.randn(2, 3, 16, 16)
    with FeatureTaps(m, ["layer3"]) as live:
        m(x)
    with FeatureTaps(m, ["layer3"], detach=True) as frozen:
        m(x)
    assert live["layer3"].requires_grad and not frozen["layer3"].requires_grad
    live["layer3"].pow(2).mean().backward()
    assert m.conv1.weight.grad is not None and m.fc.weight.grad is None


@pytest.mark.parametrize("name,expected", [
    ("torchvision:resnet18", ["layer1", "layer2", "layer3", "layer4"]),
    ("resnet18", ["layer1", "layer2", "layer3", "layer4"]),
    ("efficientnet_b0", ["blocks.1", "blocks.2", "blocks.4", "blocks.6"]),
    ("mobilenetv3-small", ["blocks.0", "blocks.1", "blocks.3", "blocks.5"]),
    ("cifar-resnet20", ["layer1", "layer2", "layer3"]),
    ("cifar-vgg8", ["block1", "block2", "block3", "block4"]),
    # torchvision nets have no feature_info: a dry forward keeps the last module at each stride ≥ 4
    ("torchvision:efficientnet_b0", ["features.2", "features.3", "features.5", "features.8"]),
    ("torchvision:mobilenet_v3_small", ["features.1", "features.3", "features.8", "features.12"]),
])
def test_default_feature_layers(name, expected):
    model = create_model(name, 3)
    layers = default_feature_layers(model)
    assert layers == expected
    with FeatureTaps(model, layers) as taps, torch.no_grad():
        model.eval()(torch.randn(1, 3, 64, 64))
    assert list(taps.features) == expected


@pytest.mark.parametrize("name,dim", [
    ("resnet18", 512), ("torchvision:resnet18", 512), ("torchvision:mobilenet_v3_small", 1024),
    ("efficientnet-lite0", 1280), ("cifar-wrn-16-2", 128), ("cifar-vgg8", 512),
])
def test_pooled_features(name, dim):
    model = create_model(name, 3, in_chans=1).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        pooled = forward_features_pooled(model, x)
        logits, pooled2 = forward_with_pooled(model, x)
        from compress.models.introspect import classifier_module

        head = classifier_module(model)[1]
        assert pooled.shape == (2, dim)
        assert torch.allclose(pooled, pooled2, atol=1e-5)
        assert torch.allclose(logits, model(x), atol=1e-5)
        assert torch.allclose(head(pooled2), logits, atol=1e-5)


def test_pooled_equals_manual_average_for_resnet():
    m = create_model("cifar-resnet8", 2).eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        manual = m.layer3(m.layer2(m.layer1(m.relu(m.bn1(m.conv1(x)))))).mean(dim=(2, 3))
        assert torch.allclose(forward_features_pooled(m, x), manual, atol=1e-6)
