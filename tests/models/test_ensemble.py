import json

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from compress.errors import CheckpointError, UserInputError
from compress.models import create_model
from compress.jobs.ensemble_search import grid_weights, search_ensemble_weights
from compress.models.ensemble import WeightedEnsemble, normalize_weights


def _members():
    torch.manual_seed(0)
    return [create_model(a, 5, 3).eval() for a in ("cifar_resnet8", "cifar_resnet14", "cifar_vgg8")]


def test_output_is_the_weighted_sum_of_member_logits():
    members = _members()
    ens = WeightedEnsemble(members, [0.3, 0.4, 0.3]).eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        expect = sum(w * m(x) for w, m in zip((0.3, 0.4, 0.3), members))
        torch.testing.assert_close(ens(x), expect)
        # weights are normalised: 3 4 3 is the paper's 0.3 0.4 0.3
        torch.testing.assert_close(WeightedEnsemble(members, [3, 4, 3]).eval()(x), expect)


def test_probability_combination_is_the_weighted_mixture():
    members = _members()
    ens = WeightedEnsemble(members, [0.2, 0.5, 0.3], combine="probs").eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        mix = sum(w * m(x).softmax(1) for w, m in zip((0.2, 0.5, 0.3), members))
        torch.testing.assert_close(ens(x).softmax(1), mix)


def test_weights_are_validated():
    assert normalize_weights(None, 4) == [0.25] * 4
    with pytest.raises(UserInputError, match="one weight per"):
        WeightedEnsemble(_members(), [0.5, 0.5])
    with pytest.raises(UserInputError, match="positive"):
        WeightedEnsemble(_members(), [0.5, 0.0, 0.5])
    with pytest.raises(UserInputError, match="combine"):
        WeightedEnsemble(_members(), combine="vote")


def test_ensemble_has_no_trainable_surprises():
    ens = WeightedEnsemble(_members(), [1, 1, 2])
    assert "weights" not in ens.state_dict()  # a buffer of settings, not learned state
    assert ens.weights.tolist() == pytest.approx([0.25, 0.25, 0.5])


def test_grid_is_equation_14():
    g = grid_weights(3, 1)
    assert len(g) == 9
    assert g[0] == pytest.approx([0.45, 0.1, 0.45]) and g[3] == pytest.approx([0.3, 0.4, 0.3])
    assert all(sum(w) == pytest.approx(1.0) for w in g)
    with pytest.raises(UserInputError, match="at least two"):
        grid_weights(1, 0)
    with pytest.raises(UserInputError, match="member index"):
        grid_weights(3, 3)


def _train_briefly(model, x_all, y_all, steps=10):
    # a few SGD steps so the members disagree in interesting ways (untrained nets predict one class)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for step in range(steps):
        x, y = x_all[step * 32:(step + 1) * 32], y_all[step * 32:(step + 1) * 32]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()


@pytest.fixture(scope="module")
def member_run(tmp_path_factory):
    """Two (untrained, differently seeded) digit classifiers saved in one run folder with its split."""
    from compress.data import DataConfig, build_data
    from compress.checkpoint import Manifest, save_checkpoint

    run = tmp_path_factory.mktemp("members")
    torch.set_num_threads(1)
    data = build_data(DataConfig(), seed=0, run_dir=run)
    x_all = torch.stack([data.test[i][0] for i in range(320)])  # un-augmented: fast to load
    y_all = torch.tensor([data.test[i][1] for i in range(320)])
    paths = []
    for i, arch in enumerate(("cifar_resnet8", "cifar_vgg8")):
        torch.manual_seed(10 + i)
        model = create_model(arch, len(data.class_names), data.in_chans)
        _train_briefly(model, x_all, y_all)
        man = Manifest(architecture=arch, num_classes=10, in_chans=1, image_size=16, mean=tuple(data.mean),
                       std=tuple(data.std), class_names=tuple(data.class_names), role="member",
                       config={"data": {"data": None, "train_ratio": 0.8, "val_fraction": 0.1},
                               "train": {"seed": 0}}, split_hash=data.split.hash)
        paths.append(str(save_checkpoint(run / f"m{i}" / "checkpoints" / "best", model, man)))
    return data, paths


def test_search_scores_every_candidate_on_the_validation_split(member_run):
    from compress.models.restore import load_checkpoint

    data, paths = member_run
    result = search_ensemble_weights(paths, vary=1, device="cpu")
    assert result.split == "val" and result.images == len(data.val) and result.split_hash == data.split.hash
    # independent recomputation: member logits on the same images, weighted by hand
    x = torch.stack([data.val[i][0] for i in range(len(data.val))])
    y = np.array([data.val[i][1] for i in range(len(data.val))])
    with torch.no_grad():
        logits = [load_checkpoint(p).model.eval()(x).numpy() for p in paths]
    assert result.member_oa == pytest.approx([float((lg.argmax(1) == y).mean()) for lg in logits], abs=1e-9)
    assert [c.weights for c in result.candidates] == [pytest.approx([1 - g, g]) for g in np.arange(1, 10) / 10]
    for cand in result.candidates:
        pred = (cand.weights[0] * logits[0] + cand.weights[1] * logits[1]).argmax(1)
        assert cand.oa == pytest.approx(float((pred == y).mean()), abs=1e-9)
    assert result.best.oa == max(c.oa for c in result.candidates)


def test_search_refuses_members_of_other_classes(member_run, tmp_path):
    from compress.checkpoint import read_manifest, save_checkpoint

    _, paths = member_run
    man = read_manifest(paths[0]).replace(class_names=tuple("abcdefghij"))
    other = save_checkpoint(tmp_path / "other", create_model("cifar_resnet8", 10, 1), man)
    with pytest.raises(CheckpointError, match="share their classes"):
        search_ensemble_weights([paths[0], str(other)], device="cpu")


def test_cli_search_json(member_run):
    from compress.cli import ensemble as cli_ensemble

    _, paths = member_run
    app = typer.Typer()
    cli_ensemble.register(app)
    app.command("noop")(lambda: None)  # a second command keeps 'ensemble' a named group
    res = CliRunner().invoke(app, ["ensemble", "search", *paths, "--grid", "0.3", "--grid", "0.7", "--json",
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert [c["weights"] for c in out["candidates"]] == [[0.3, 0.7], [0.7, 0.3]]
    table = CliRunner().invoke(app, ["ensemble", "search", *paths, "--grid", "0.3", "--device", "cpu"])
    assert table.exit_code == 0 and "best weights: 0.300 0.700" in table.output
    bad = CliRunner().invoke(app, ["ensemble", "search", paths[0], "--device", "cpu"])
    assert bad.exit_code == 1 and "at least two" in bad.output
