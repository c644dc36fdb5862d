"""Depth pruning: which blocks can go, the order they go in, exact MACs, the recorded structure."""
import copy

import pytest
import torch
from torch import nn

from compress.errors import CheckpointError, UserInputError
from compress.jobs.prune_budget import PruneJobConfig, prune_to_budget
from compress.models import create_model
from compress.models.depth import block_contribution, drop_blocks, prune_depth, removable_blocks
from compress.models.prune import PruneConfig
from compress.models.structure import apply_structure, structure_of
from profiles.counting.torch_count import analyze_torch


def _macs(model, size=16):
    return analyze_torch(copy.deepcopy(model).to("meta"), (1, 3, size, size)).macs


def test_removable_blocks_are_those_with_an_identity_shortcut():
    r20 = create_model("cifar_resnet20", 10, 3)
    # 3 stages × 3 blocks; the first block of stages 2 and 3 changes shape (1×1 conv shortcut)
    assert removable_blocks(r20) == ["layer1.0", "layer1.1", "layer1.2", "layer2.1", "layer2.2", "layer3.1", "layer3.2"]
    lite0 = create_model("efficientnet-lite0", 10, 3)
    assert len(removable_blocks(lite0)) == 9 and all(lite0.get_submodule(p).has_skip for p in removable_blocks(lite0))
    assert removable_blocks(create_model("cifar-vgg8", 10, 3)) == []  # no residual blocks


def test_a_dropped_block_keeps_shapes_and_removes_exactly_its_macs():
    torch.manual_seed(0)
    model = create_model("cifar_resnet20", 10, 3).eval()
    before = _macs(model)
    drop_blocks(model, ["layer1.1"])
    # two 3×3 convs, 16 → 16 channels at 16×16: 2 × 16·16·9·16·16 MACs
    assert before - _macs(model) == 2 * 16 * 16 * 9 * 16 * 16
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10) and isinstance(model.layer1[1], nn.Identity)


def test_the_structure_rebuilds_the_depth_pruned_model_from_its_zoo_name():
    torch.manual_seed(0)
    model = create_model("cifar_resnet20", 10, 3).eval()
    reference = copy.deepcopy(model)
    drop_blocks(model, ["layer2.2", "layer3.1"])
    structure = structure_of(model, reference)
    assert structure == {"layer2.2": {"identity": True}, "layer3.1": {"identity": True}}
    fresh = apply_structure(create_model("cifar_resnet20", 10, 3), structure)
    fresh.load_state_dict(model.state_dict())  # strict: the same tensors, no more
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(fresh.eval()(x), model(x))
    with pytest.raises(CheckpointError, match="'conv1', which is not a residual block with an identity shortcut"):
        apply_structure(create_model("cifar_resnet20", 10, 3), {"conv1": {"identity": True}})


def test_the_block_that_changes_its_input_least_goes_first():
    torch.manual_seed(0)
    model = create_model("cifar_resnet20", 10, 3).eval()
    with torch.no_grad():
        model.layer2[2].bn2.weight.zero_()
        model.layer2[2].bn2.bias.zero_()  # its residual branch adds nothing: relu(x + 0) = x after the stage's relu
    x = torch.rand(4, 3, 16, 16)
    score = block_contribution(model, removable_blocks(model), [x])
    assert score["layer2.2"] == pytest.approx(0.0, abs=1e-6) and min(score, key=score.get) == "layer2.2"
    steps = prune_depth(model, x[:1], lambda m: (_macs(m) < 10_000_000, {"macs": _macs(m)}), [x])
    assert steps[1][1]["dropped"] == "layer2.2" and steps[-1][1]["macs"] < 10_000_000
    assert steps[1][0] == pytest.approx(1 / 7, abs=1e-4)


def test_a_budget_met_by_dropping_blocks_and_one_that_is_not():
    model = create_model("cifar_resnet20", 10, 3)
    cfg = PruneJobConfig(checkpoint="x", macs=0.8, prune=PruneConfig(mode="depth"))
    steps, base, final, label, margin = prune_to_budget(model, (1, 3, 16, 16), cfg, "cifar_resnet20")
    assert final["macs"] <= 0.8 * base["macs"] and margin >= 0 and all("dropped" in s.info for s in steps[1:])
    tight = PruneJobConfig(checkpoint="x", macs=0.1, prune=PruneConfig(mode="depth"))
    with pytest.raises(UserInputError, match="removing every residual block of cifar_resnet20 whose shortcut"):
        prune_to_budget(create_model("cifar_resnet20", 10, 3), (1, 3, 16, 16), tight, "cifar_resnet20")
    with pytest.raises(UserInputError, match="Unknown pruning mode 'height'"):
        PruneConfig(mode="height")
    with pytest.raises(UserInputError, match="no residual block with an identity shortcut"):
        prune_depth(create_model("cifar-vgg8", 10, 3), torch.zeros(1, 3, 16, 16), lambda m: (False, {}))
