"""Structured pruning: budgets, channel rounding, rebuilding a pruned model from its recorded structure."""
import pytest
import torch
from torch import nn

from compress.errors import UserInputError
from compress.models import create_model
from compress.models.prune import PruneConfig, prune_model
from compress.models.structure import structure_of


def _macs(model, size=16):
    import copy

    from profiles.counting.torch_count import analyze_torch

    return analyze_torch(copy.deepcopy(model).to("meta"), (1, 3, size, size)).macs


@pytest.mark.parametrize("arch", ["cifar_resnet20", "mobilenetv3_small_100"])
def test_meets_a_macs_budget_keeps_the_output_and_rounds_channels(arch):
    torch.manual_seed(0)
    model = create_model(arch, 5, 3).eval()
    base = _macs(model)
    x = torch.randn(2, 3, 16, 16)
    steps = prune_model(model, x[:1], PruneConfig(round_to=8, step=0.05),
                        lambda m: (_macs(m) <= 0.6 * base, {"macs": _macs(m)}))
    assert _macs(model) <= 0.6 * base < steps[0].info["macs"]
    assert model(x).shape == (2, 5)
    reference = create_model(arch, 5, 3)
    changed = structure_of(model, reference)
    convs = [path for path, spec in changed.items() if "out_channels" in spec["attrs"]]
    assert convs and all(changed[p]["attrs"]["out_channels"] % 8 == 0 for p in convs)
    from compress.models.introspect import classifier_module

    head = classifier_module(model)[0]
    assert head not in changed or changed[head]["attrs"]["out_features"] == 5


def test_pruned_model_rebuilds_from_its_structure(tmp_path):
    from compress.checkpoint import Manifest, save_checkpoint
    from compress.models.restore import load_checkpoint

    torch.manual_seed(0)
    model = create_model("cifar_resnet8", 4, 3).eval()
    prune_model(model, torch.randn(1, 3, 16, 16), PruneConfig(round_to=4, step=0.1),
                lambda m: (sum(p.numel() for p in m.parameters()) < 40_000, {}))
    man = Manifest(architecture="cifar_resnet8", num_classes=4, in_chans=3, image_size=16, mean=(0.5,) * 3,
                   std=(0.25,) * 3, class_names=tuple("abcd"),
                   model_kwargs={"pruned": structure_of(model, create_model("cifar_resnet8", 4, 3))})
    save_checkpoint(tmp_path / "ck", model, man)
    again = load_checkpoint(tmp_path / "ck").model
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


class Opaque(nn.Module):
    """Leaves autograd between the conv and the head: a pruner following the graph breaks it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3)
        self.body = nn.Conv2d(16, 16, 1)
        self.fc = nn.Linear(16 * 14 * 14, 2)

    def forward(self, x):
        h = self.body(self.conv(x))
        return self.fc(h.reshape(x.shape[0], 16 * 14 * 14))


def test_a_graph_it_cannot_follow_is_one_line_naming_the_layer():
    model = Opaque()
    with pytest.raises(UserInputError, match=r"cannot follow this model's graph \(it fails at or after layer 'body'"):
        prune_model(model, torch.randn(1, 3, 16, 16), PruneConfig(step=0.1), lambda m: (False, {}))
