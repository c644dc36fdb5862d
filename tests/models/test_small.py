"""CIFAR-style small nets: exact parameter counts (closed form + CRD's published sizes), shapes, bands."""
import pytest
import torch

from compress.errors import UserInputError
from compress.models import create_model, default_feature_layers, model_defaults


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def cifar_resnet_params(depth, widths, classes, in_chans=3):
    """Closed form: 3×3 stem + BN, BasicBlocks (two 3×3 conv + BN, 1×1 conv + BN shortcut on change), FC."""
    n = (depth - 2) // 6
    total = 9 * in_chans * widths[0] + 2 * widths[0]
    prev = widths[0]
    for w in widths[1:]:
        for _ in range(n):
            total += 9 * prev * w + 2 * w + 9 * w * w + 2 * w + (prev * w + 2 * w if prev != w else 0)
            prev = w
    # every stride-2 block here also changes width, so "width changes" covers all shortcut convs
    return total + widths[-1] * classes + classes


# Exact counts; the rounded ones match the CRD paper (Tian et al. 2020, 100 classes):
# resnet20 0.28M, resnet56 0.86M, resnet110 1.74M, resnet8x4 1.23M, resnet32x4 7.43M,
# wrn_16_2 0.70M, wrn_40_1 0.57M, wrn_40_2 2.26M, vgg8 3.96M, vgg13 9.46M.
COUNTS = {
    ("cifar-resnet8", 100): 83_892,
    ("cifar-resnet20", 10): 272_474,
    ("cifar-resnet20", 100): 278_324,
    ("cifar-resnet56", 100): 861_620,
    ("cifar-resnet110", 100): 1_736_564,
    ("cifar-resnet8x4", 100): 1_233_540,
    ("cifar-resnet32x4", 100): 7_433_860,
    ("cifar-wrn-16-1", 100): 180_916,
    ("cifar-wrn-16-2", 100): 703_284,
    ("cifar-wrn-40-1", 100): 569_780,
    ("cifar-wrn-40-2", 100): 2_255_156,
    ("cifar-vgg8", 100): 3_965_028,
    ("cifar-vgg13", 100): 9_462_180,
}


@pytest.mark.parametrize("name,classes", sorted(COUNTS))
def test_exact_param_counts(name, classes):
    assert n_params(create_model(name, classes)) == COUNTS[(name, classes)]


@pytest.mark.parametrize("name,depth,widths", [
    ("cifar_resnet8", 8, (16, 16, 32, 64)), ("cifar_resnet14", 14, (16, 16, 32, 64)),
    ("cifar_resnet20", 20, (16, 16, 32, 64)), ("cifar_resnet32", 32, (16, 16, 32, 64)),
    ("cifar_resnet8x4", 8, (32, 64, 128, 256)),
])
@pytest.mark.parametrize("classes,in_chans", [(3, 1), (10, 3), (100, 4)])
def test_resnet_count_matches_closed_form(name, depth, widths, classes, in_chans):
    model = create_model(name, classes, in_chans=in_chans)
    assert n_params(model) == cifar_resnet_params(depth, widths, classes, in_chans)


def test_vgg8_count_by_hand():
    # conv(+bias) + BN per block: 3→64, 64→128, 128→256, 256→512, 512→512; then Linear 512→100
    convs = [(3, 64), (64, 128), (128, 256), (256, 512), (512, 512)]
    total = sum(9 * i * o + o + 2 * o for i, o in convs) + 512 * 100 + 100
    assert total == 3_965_028 == n_params(create_model("cifar-vgg8", 100))


ALL = ["cifar-resnet8", "cifar-resnet14", "cifar-resnet20", "cifar-resnet32", "cifar-resnet56", "cifar-resnet110",
       "cifar-resnet8x4", "cifar-resnet32x4", "cifar-wrn-16-1", "cifar-wrn-16-2", "cifar-wrn-40-1",
       "cifar-wrn-40-2", "cifar-vgg8", "cifar-vgg13"]


@pytest.mark.parametrize("name", ALL)
def test_forward_tiny_inputs_any_band_count(name):
    for in_chans, size, classes in ((1, 8, 2), (4, 16, 3)):
        model = create_model(name, classes, in_chans=in_chans).eval()
        with torch.no_grad():
            out = model(torch.randn(2, in_chans, size, size))
        assert out.shape == (2, classes)
        assert torch.isfinite(out).all()


def test_feature_layer_shapes_at_32px():
    from compress.models import FeatureTaps

    model = create_model("cifar-wrn-16-2", 5).eval()
    layers = default_feature_layers(model)
    assert layers == ["block1", "block2", "block3"]
    with FeatureTaps(model, layers) as taps, torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    assert {k: tuple(v.shape) for k, v in taps.features.items()} == {
        "block1": (2, 32, 32, 32), "block2": (2, 64, 16, 16), "block3": (2, 128, 8, 8)}


def test_vgg_pools_before_block4_only_from_64px():
    from compress.models import FeatureTaps

    model = create_model("cifar-vgg8", 3).eval()
    for size, expected in ((32, 4), (64, 4), (128, 8)):
        with FeatureTaps(model, ["block4"]) as taps, torch.no_grad():
            model(torch.randn(1, 3, size, size))
        assert taps["block4"].shape[-1] == expected


def test_small_defaults_and_no_hub_weights():
    d = model_defaults("cifar-resnet20")
    assert (d.image_size, d.mean, d.std) == (32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with pytest.raises(UserInputError, match="no hub weights.*--weights"):
        create_model("cifar-resnet20", 10, pretrained=True)


def test_unknown_builder_option():
    assert create_model("cifar-wrn-16-1", 3, drop_rate=0.3).block1.layer[0].drop.p == 0.3
    with pytest.raises(UserInputError, match="does not accept option"):
        create_model("cifar-resnet8", 3, widen=2)
