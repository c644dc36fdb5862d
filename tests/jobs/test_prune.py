"""compress prune: a pruned checkpoint every command accepts, recovery by distillation, budgets it cannot meet."""
import json

import pytest
import torch
from typer.testing import CliRunner

from compress.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("t") / "t"
    r = runner.invoke(app, ["train", "--model", "cifar_resnet20", "--epochs", "1", "--image-size", "8",
                            "--batch-size", "256", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def pruned(teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("p") / "p"
    r = runner.invoke(app, ["prune", str(teacher), "--macs", "0.5", "--round-to", "4", "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    return out, json.loads(r.stdout)


def test_prune_meets_the_budget_and_records_each_step(pruned):
    out, res = pruned
    assert res["after"]["macs"] <= 0.5 * res["before"]["macs"] and res["margin"] >= 0
    assert [s["ratio"] for s in res["steps"]][0] == 0.0 and len(res["steps"]) >= 2
    man = json.loads((out / "checkpoints" / "best" / "manifest.json").read_text())
    assert man["model_kwargs"]["pruned"] and man["role"] == "pruned"
    assert (out / "split.json").is_file() and 0 <= res["test_oa_before_recovery"] <= 1


def test_every_command_takes_the_pruned_checkpoint(pruned, teacher, tmp_path):
    out, _ = pruned
    ck = out / "checkpoints" / "best"
    ev = json.loads(runner.invoke(app, ["evaluate", str(out), "--json"]).stdout)
    assert ev["n"] > 0
    ex = runner.invoke(app, ["export", str(ck), "-o", str(tmp_path / "e"), "--samples", "32", "--json"])
    assert ex.exit_code == 0, ex.output
    row = json.loads(ex.stdout)["parity"]["rows"][1]
    assert row["max_abs"] < 1e-4  # ONNX parity of the pruned graph
    prof = json.loads(runner.invoke(app, ["profile", str(ck), "--target", "jetson-orin-nano-8gb", "--json"]).stdout)
    assert prof["models"][0]["analysis"]["macs"] > 0
    d = runner.invoke(app, ["distill", "--teacher", str(ck), "--epochs", "1", "--no-baseline", "--batch-size", "256",
                            "--out", str(tmp_path / "t2"), "--json"])
    assert d.exit_code == 0, d.output  # a pruned teacher


def test_depth_pruning_drops_blocks_and_the_checkpoint_exports_with_parity(teacher, tmp_path):
    r = runner.invoke(app, ["prune", str(teacher), "--mode", "depth", "--macs", "0.7", "-o", str(tmp_path / "d"),
                            "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["after"]["macs"] <= 0.7 * res["before"]["macs"] and all("dropped" in s["info"] for s in res["steps"][1:])
    man = json.loads((tmp_path / "d" / "checkpoints" / "best" / "manifest.json").read_text())
    assert sorted(man["model_kwargs"]["pruned"]) == sorted(s["info"]["dropped"] for s in res["steps"][1:])
    ex = runner.invoke(app, ["export", str(tmp_path / "d" / "checkpoints" / "best"), "-o", str(tmp_path / "e"),
                             "--samples", "32", "--json"])
    assert ex.exit_code == 0, ex.output
    assert json.loads(ex.stdout)["parity"]["rows"][1]["max_abs"] < 1e-4


def test_distilling_into_the_pruned_student_changes_only_the_student(pruned, teacher, tmp_path):
    from safetensors.torch import load_file

    out, _ = pruned
    before_t = load_file(str(teacher / "checkpoints" / "best" / "model.safetensors"))
    before_s = load_file(str(out / "checkpoints" / "best" / "model.safetensors"))
    r = runner.invoke(app, ["distill", "--student", str(out), "--teacher", str(teacher), "--epochs", "1",
                            "--no-baseline", "--batch-size", "256", "--out", str(tmp_path / "d"), "--json"])
    assert r.exit_code == 0, r.output
    after_s = load_file(str(tmp_path / "d" / "student" / "checkpoints" / "last" / "model.safetensors"))
    assert before_s.keys() == after_s.keys()  # the pruned structure, not the zoo's
    assert any(not torch.equal(before_s[k], after_s[k]) for k in before_s)
    after_t = load_file(str(teacher / "checkpoints" / "best" / "model.safetensors"))
    assert all(torch.equal(before_t[k], after_t[k]) for k in before_t)


def test_prune_and_recover_in_one_command(teacher, tmp_path):
    r = runner.invoke(app, ["prune", str(teacher), "--params", "0.6", "--round-to", "4", "--recover", "--epochs", "1",
                            "--batch-size", "256", "-o", str(tmp_path / "pr"), "--json"])
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)["recovered"]
    assert [row["role"] for row in rec["rows"]] == ["teacher (given)", "student"] and rec["rows"][1]["method"] == "kd"


def test_recover_with_baseline_trains_the_pruned_network_alone_too(teacher, tmp_path):
    r = runner.invoke(app, ["prune", str(teacher), "--params", "0.6", "--round-to", "4", "--recover", "--baseline",
                            "--epochs", "1", "--batch-size", "256", "-o", str(tmp_path / "pr"), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["recovered"]["rows"]
    assert [row["role"] for row in rows] == ["teacher (given)", "baseline", "student"]
    assert rows[1]["method"] == "ce" and rows[1]["params_m"] == rows[2]["params_m"]  # the same pruned network


@pytest.mark.parametrize("args,message", [
    (["--latency-ms", "0.00001", "--target", "jetson-orin-nano-8gb"], "cannot be met"),
    (["--macs", "1.5"], "share of the model to keep"),
    (["--macs", "0.5", "--params", "0.5"], "exactly one budget"),
    (["--latency-ms", "2"], "needs a positive budget and --target"),
    (["--macs", "0.5", "--keep", "layer9.conv"], "is not a module"),
    (["--macs", "0.5", "--baseline"], "add --recover"),
])
def test_bad_budgets_are_one_line(teacher, tmp_path, args, message):
    r = runner.invoke(app, ["prune", str(teacher), *args, "-o", str(tmp_path / "x")])
    assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x").exists()


def test_a_reachable_latency_budget_is_met_and_the_estimate_agrees_with_profile(teacher, tmp_path):
    """Between the teacher's estimate and the smallest the search can reach, a budget must be met; the pruned
    checkpoint's own estimate (``compress profile``) is the number the search stopped at."""
    where = ["--target", "jetson-orin-nano-8gb", "--round-to", "4"]
    full = json.loads(runner.invoke(app, ["prune", str(teacher), "--latency-ms", "1000", *where, "-o",
                                          str(tmp_path / "a"), "--json"]).stdout)
    low = runner.invoke(app, ["prune", str(teacher), "--latency-ms", "0.00001", *where, "-o", str(tmp_path / "b")])
    smallest = float(low.output.split("the smallest reached was ")[1].split(" ms")[0])
    before = full["before"]["latency_ms"]
    assert full["after"] == full["before"] and smallest < before
    budget = round((smallest + before) / 2, 4)
    r = runner.invoke(app, ["prune", str(teacher), "--latency-ms", str(budget), *where, "-o", str(tmp_path / "c"),
                            "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert smallest <= res["after"]["latency_ms"] <= budget < before and res["after"]["macs"] < full["before"]["macs"]
    assert res["margin"] == pytest.approx(budget - res["after"]["latency_ms"], abs=1e-4)
    prof = runner.invoke(app, ["profile", str(tmp_path / "c" / "checkpoints" / "best"), "--target",
                               "jetson-orin-nano-8gb", "--precision", "fp16", "--json"])
    est = json.loads(prof.stdout)["models"][0]["latency"][0]
    assert est["kind"] == "estimate" and est["latency_ms"] == pytest.approx(res["after"]["latency_ms"], abs=1e-4)
