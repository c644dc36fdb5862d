"""A hand-edited manifest or pruned structure is one line naming the field, never a traceback, a NaN
confidence or an attribute set on a layer."""
import json
import math
import shutil

import pytest
import torch
from typer.testing import CliRunner

from compress.checkpoint import Manifest
from compress.cli import app
from compress.errors import CheckpointError
from compress.models.structure import apply_structure

runner = CliRunner()
GOOD = {"format": "compress-checkpoint", "format_version": 1, "architecture": "cifar_resnet8", "num_classes": 2,
        "in_chans": 1, "image_size": 16, "mean": [0.5], "std": [0.25], "class_names": ["a", "b"]}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "run"
    res = runner.invoke(app, ["train", "--image-size", "8", "--epochs", "1", "--batch-size", "256", "--device", "cpu",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.parametrize("change,words", [
    ({"mean": [0.1, 0.2]}, "mean is [0.1, 0.2]"), ({"mean": "abc"}, "mean is 'abc'"),
    ({"mean": [float("nan")]}, "finite number"), ({"std": [0.0]}, "std has a value ≤ 0"),
    ({"class_names": None}, "class_names is not a list"), ({"num_classes": 5}, "lists 10 names for num_classes 5"),
    ({"image_size": 0}, "image_size is 0; expected a whole number in 1…4096"), ({"image_size": -32}, "image_size is -32"),
    ({"image_size": 100000}, "image_size is 100000"), ({"in_chans": "1"}, "in_chans is '1'"),
    ({"in_chans": 3, "mean": [0.5] * 3, "std": [0.2] * 3}, "holds (16, 1, 3, 3)"),
    ({"model_kwargs": [1]}, "model_kwargs is a list"),
])
def test_an_edited_manifest_is_one_line(run, tmp_path, change, words):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    man = copy / "checkpoints" / "best" / "manifest.json"
    data = json.loads(man.read_text())
    data.update(change)
    man.write_text(json.dumps(data))
    img = tmp_path / "x.png"
    from PIL import Image

    Image.new("L", (8, 8), 128).save(img)
    res = runner.invoke(app, ["predict", str(copy / "checkpoints" / "best"), str(img)])
    assert res.exit_code == 1 and "Traceback" not in res.output and words in res.output, res.output
    assert res.output.count("error:") == 1


@pytest.mark.parametrize("change,words", [
    ({"architecture": ""}, "architecture is ''"), ({"architecture": 5}, "architecture is 5"),
    ({"num_classes": 0, "class_names": []}, "num_classes is 0; expected a whole number in 1…1048576"),
    ({"num_classes": (1 << 20) + 1}, "num_classes is 1048577; expected a whole number in 1…1048576"),
    ({"in_chans": 0}, "in_chans is 0; expected a whole number in 1…1024"),
    ({"in_chans": 1025}, "in_chans is 1025; expected a whole number in 1…1024"),
    ({"image_size": 4097}, "image_size is 4097; expected a whole number in 1…4096"),
    ({"num_classes": True}, "num_classes is True"),
])
def test_each_field_range_is_checked_at_its_edges(change, words):
    with pytest.raises(CheckpointError, match=words.replace("(", r"\(").replace("+", r"\+")):
        Manifest.from_dict({**GOOD, **change})


@pytest.mark.parametrize("change", [
    {"num_classes": 1, "class_names": ["a"]}, {"image_size": 1}, {"image_size": 4096},
    {"in_chans": 1024, "mean": [0.5] * 1024, "std": [0.25] * 1024},
])
def test_the_edges_of_each_range_are_accepted(change):
    m = Manifest.from_dict({**GOOD, **change})
    assert all(getattr(m, k) == (tuple(v) if isinstance(v, list) else v) for k, v in change.items())


def test_a_good_manifest_still_reads():
    m = Manifest.from_dict(GOOD)
    assert m.mean == (0.5,) and all(math.isfinite(v) for v in m.std)


@pytest.mark.parametrize("structure,words", [
    ({"conv": {"attrs": {"__class__": 1}}}, "sets '__class__'"),
    ({"conv": {"attrs": {"groups": 0}}}, "conv.groups = 0"),
    ({"conv": "prune me"}, "is not {attrs"),
    ("conv", "not a mapping of module paths"),
    ({"conv": {"shapes": {"weight": [-4, 3, 3, 3]}}}, "conv.weight shape = -4"),
    ({"conv": {"shapes": {"weight": [1 << 30, 3, 3, 3]}}}, "whole number in"),
    ({"conv": {"shapes": {"weight": [4, 3]}}}, "expected 4 dimension(s)"),
])
def test_an_edited_pruned_structure_is_refused(structure, words):
    model = torch.nn.Sequential()
    model.add_module("conv", torch.nn.Conv2d(3, 4, 3))
    with pytest.raises(CheckpointError, match=None) as err:
        apply_structure(model, structure)
    assert words in str(err.value)
    assert type(model.conv) is torch.nn.Conv2d and model.conv.groups == 1
