"""compress distill without --student: the teacher pruned to a budget, its baseline the same pruned network."""
import json

import pytest
import torch
from typer.testing import CliRunner

from compress.cli import app
from compress.errors import UserInputError
from compress.jobs.default_student import StudentBudget, teacher_to_prune

runner = CliRunner()
TINY = ["--image-size", "8", "--batch-size", "256", "--epochs", "1"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("t") / "t"
    r = runner.invoke(app, ["train", "--model", "cifar_resnet20", *TINY, "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    return out


def _macs(ckpt):
    from compress.checkpoint import read_manifest
    from compress.models.restore import load_checkpoint
    from profiles.counting.torch_count import analyze_torch

    man = read_manifest(ckpt)
    return analyze_torch(load_checkpoint(ckpt).model, (1, man.in_chans, man.image_size, man.image_size)).macs


@pytest.fixture(scope="module")
def distilled(teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("d") / "d"
    r = runner.invoke(app, ["distill", "--teacher", str(teacher), *TINY, "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    return out, json.loads(r.stdout)


def test_the_default_student_is_the_teacher_pruned_within_the_budget(teacher, distilled):
    out, res = distilled
    pruned = out / "pruned" / "checkpoints" / "best"
    t_macs, s_macs = _macs(teacher / "checkpoints" / "best"), _macs(pruned)
    assert s_macs <= 0.5 * t_macs and s_macs >= 0.3 * t_macs  # within the budget, not far below it
    record = json.loads((out / "pruned" / "prune.json").read_text())
    assert record["before"]["macs"] == t_macs and record["after"]["macs"] == s_macs
    rows = {r["role"]: r for r in res["rows"]}
    assert rows["student"]["architecture"] == rows["baseline"]["architecture"] == "cifar_resnet20"
    assert rows["student"]["params_m"] == rows["baseline"]["params_m"] < rows["teacher (given)"]["params_m"]
    for role in ("baseline", "student"):  # both start from the pruned weights: the comparison is like with like
        man = json.loads((out / role / "checkpoints" / "best" / "manifest.json").read_text())
        assert man["model_kwargs"]["pruned"] and str(pruned) in json.dumps(man["init"])
    assert res["chosen"].startswith("student: the teacher (cifar_resnet20) pruned in depth (identity-shortcut blocks "
                                    "removed) to ")  # the default: blocks first (bench/history/diary.md §Issue 28, AID 30 classes)
    assert f"{s_macs / t_macs:.0%} of its MACs" in res["chosen"] and "--budget 0.5 (the default)" in res["chosen"]


def test_the_choice_line_is_printed_under_the_table(teacher, tmp_path):
    r = runner.invoke(app, ["distill", "--teacher", str(teacher), *TINY, "--budget", "0.3", "--no-baseline",
                            "--out", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if ln.startswith("student: the teacher"))
    assert "for --budget 0.3," in line and "--student NAME trains a zoo network instead" in r.output
    assert _macs(tmp_path / "d" / "pruned" / "checkpoints" / "best") <= 0.3 * _macs(teacher / "checkpoints" / "best")


def test_a_depth_student_drops_whole_blocks_to_the_budget(teacher, tmp_path):
    from compress.checkpoint import read_manifest

    r = runner.invoke(app, ["distill", "--teacher", str(teacher), *TINY, "--prune-mode", "depth", "--no-baseline",
                            "--out", str(tmp_path / "d"), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    pruned = tmp_path / "d" / "pruned" / "checkpoints" / "best"
    t_macs, s_macs = _macs(teacher / "checkpoints" / "best"), _macs(pruned)
    assert s_macs <= 0.5 * t_macs
    structure = json.dumps(read_manifest(pruned).model_kwargs)
    assert '"identity": true' in structure  # blocks replaced by their identity shortcut, channels untouched
    assert "pruned in depth (identity-shortcut blocks removed)" in res["chosen"]
    assert "--budget 0.5 --prune-mode depth" in res["chosen"]


def test_depth_then_width_reaches_a_budget_blocks_alone_cannot():
    from compress.jobs.default_student import cut_to_budget
    from compress.models import create_model

    torch.manual_seed(0)
    shape = (1, 1, 8, 8)
    with pytest.raises(UserInputError, match="cannot be met by removing every residual block"):  # blocks: 18.5 %
        cut_to_budget(create_model("cifar_resnet20", 10, 1).eval(), shape, StudentBudget(macs=0.1, mode="depth"),
                      "cifar_resnet20", None)
    model = create_model("cifar_resnet20", 10, 1).eval()
    n_blocks = sum(1 for _ in model.modules())
    before, after, label, how = cut_to_budget(model, shape, StudentBudget(macs=0.1, mode="depth+width"),
                                              "cifar_resnet20", None)
    assert after["macs"] <= 0.1 * before["macs"] and label.startswith("MACs ≤ 0.1 × ") and how == "depth+width"
    assert sum(1 for _ in model.modules()) < n_blocks  # blocks went first (then channels)
    assert any(m.out_channels not in (16, 32, 64) for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    model = create_model("cifar_resnet20", 10, 1).eval()
    b2, a2, _, how = cut_to_budget(model, shape, StudentBudget(macs=0.6, mode="depth+width"), "cifar_resnet20", None)
    assert a2["macs"] <= 0.6 * b2["macs"] and how == "depth"  # blocks alone reach 60 %: no channel is cut
    assert all(m.out_channels in (16, 32, 64) for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def test_resume_keeps_the_pruned_student_it_started_with(teacher, distilled):
    out, _ = distilled
    weights = out / "pruned" / "checkpoints" / "best" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    r = runner.invoke(app, ["distill", "--resume", "--out", str(out), "--epochs", "2", "--json"])
    assert r.exit_code == 0, r.output
    assert weights.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("kw,match", [({"macs": 1.0}, "share of the teacher's MACs"),
                                      ({"macs": 0.0}, "in \\(0, 1\\)"),
                                      ({"latency_ms": 2.0}, "needs a positive budget and --target"),
                                      ({"precision": "int8"}, "add --target DEVICE"),
                                      ({"target": "jetson-orin-nano-8gb", "precision": "bf16"}, "fp16 or int8"),
                                      ({"mode": "nope"}, "--prune-mode 'nope' is not one of width, depth, depth\\+width"),
                                      ({"mode": "width", "target": "jetson-orin-nano-8gb"}, "drop one of them")])
def test_bad_budgets_get_one_line(kw, match):
    with pytest.raises(UserInputError, match=match):
        StudentBudget(**kw)


def test_weights_for_the_default_student_are_refused_before_anything_runs(tmp_path):
    w = tmp_path / "w.pt"
    torch.save({}, w)
    r = runner.invoke(app, ["distill", *TINY, "--weights", str(w), "--out", str(tmp_path / "d")])
    assert r.exit_code != 0 and "name the student with --student NAME, or drop --weights" in r.output


def test_an_ensemble_is_pruned_from_its_heaviest_member():
    assert teacher_to_prune(("a", "b", "c"), (0.2, 0.5, 0.3)) == "b"
    assert teacher_to_prune(("a", "b"), (0.5, 0.5)) == "a" and teacher_to_prune(("a", "b"), ()) == "a"
