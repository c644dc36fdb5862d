import json

import pytest
import torch

from compress.checkpoint import Manifest, read_manifest, save_checkpoint
from compress.models.restore import load_checkpoint
from compress.errors import CheckpointError
from compress.models import create_model


def _manifest(**kw):
    base = dict(architecture="cifar_resnet8", num_classes=3, in_chans=1, image_size=8, mean=(0.5,), std=(0.25,),
                class_names=("a", "b", "c"))
    base.update(kw)
    return Manifest(**base)


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = create_model("cifar_resnet8", num_classes=3, in_chans=1).eval()
    save_checkpoint(tmp_path / "ck", model, _manifest())
    ck = load_checkpoint(tmp_path / "ck")
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(model(x), ck.model(x))
    assert ck.manifest.class_names == ("a", "b", "c") and ck.manifest.versions["torch"] == torch.__version__
    assert not list(tmp_path.glob("ck/.*tmp"))  # no temporary files left behind


def test_other_architecture_or_classes_rejected(tmp_path):
    model = create_model("cifar_resnet8", num_classes=3, in_chans=1)
    save_checkpoint(tmp_path / "ck", model, _manifest())
    with pytest.raises(CheckpointError, match="holds a 'cifar_resnet8' model but 'cifar_resnet14'"):
        load_checkpoint(tmp_path / "ck", expect=_manifest(architecture="cifar_resnet14"))
    with pytest.raises(CheckpointError, match="differ from this data"):
        load_checkpoint(tmp_path / "ck", expect=_manifest(class_names=("a", "b", "x")))


def test_foreign_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "model.pt").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="not a compress checkpoint"):
        load_checkpoint(tmp_path / "foreign")
    model = create_model("cifar_resnet8", num_classes=3, in_chans=1)
    save_checkpoint(tmp_path / "ck", model, _manifest())
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "manifest.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(CheckpointError, match="not a compress checkpoint manifest"):
        read_manifest(tmp_path / "ck")
