"""The CLI end to end on the embedded digits, and one-line errors for bad input."""
import json

import pytest
from typer.testing import CliRunner

from compress.cli import app

runner = CliRunner()


def _ok(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return r


def test_help_lists_every_command():
    out = _ok(["--help"]).output
    for cmd in ("distill", "train", "evaluate", "export", "profile"):
        assert cmd in out


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "d"
    r = _ok(["distill", "--student", "cifar_resnet8", "--epochs", "4", "--image-size", "8", "--batch-size", "64",
             "--lr", "0.1",
             "--device", "cpu", "--out", str(out), "--json"])
    return out, json.loads(r.output)


def test_distill_end_to_end_learns_and_writes_the_run_folder(distilled):
    out, res = distilled
    rows = {r["role"]: r for r in res["rows"]}
    assert set(rows) == {"teacher", "baseline", "student"}
    # ten classes: chance is 10 %; four short epochs already get far above it
    assert rows["teacher"]["test_oa"] > 0.6
    assert rows["student"]["test_oa"] > 0.4 and rows["baseline"]["test_oa"] > 0.4
    for rel in ("config.json", "split.json", "metrics.json", "student/history.csv", "student/metrics.json",
                "student/confusion.csv", "student/confusion.png", "student/checkpoints/best/manifest.json",
                "teacher/checkpoints/best/model.safetensors"):
        assert (out / rel).is_file(), rel
    man = json.loads((out / "student/checkpoints/best/manifest.json").read_text())
    assert man["method"] == "kd" and man["architecture"] == "cifar_resnet8" and man["image_size"] == 8
    assert man["metrics"]["test"]["oa"] == pytest.approx(rows["student"]["test_oa"])


def test_evaluate_on_saved_split_reproduces_test_accuracy(distilled):
    out, res = distilled
    r = json.loads(_ok(["evaluate", str(out / "student"), "--json"]).output)
    student = [x for x in res["rows"] if x["role"] == "student"][0]
    assert r["metrics"]["oa"] == pytest.approx(student["test_oa"])
    assert r["n"] == res["data"]["test"]


def test_distill_with_given_teacher_skips_teacher_training(distilled, tmp_path):
    out, _ = distilled
    r = json.loads(_ok(["distill", "--teacher", str(out / "teacher"), "--epochs", "1", "--no-baseline",
                        "--batch-size", "128", "--out", str(tmp_path / "t"), "--json"]).output)
    assert [x["role"] for x in r["rows"]] == ["teacher (given)", "student"]
    given = r["rows"][0]
    assert given["seconds"] == 0.0 and given["checkpoint"] == str(out / "teacher")  # scored, not trained again
    assert r["data"]["image_size"] == 8  # the teacher's input size fixes the run's preprocessing


def test_split_from_reuses_a_runs_split(distilled, tmp_path):
    out, _ = distilled
    r = json.loads(_ok(["train", "--split-from", str(out / "student" / "checkpoints" / "best"), "--train-ratio", "0.3",
                        "--seed", "7", "--epochs", "1", "--image-size", "8", "--batch-size", "128",
                        "--out", str(tmp_path / "s"), "--json"]).output)
    assert (tmp_path / "s" / "split.json").read_text() == (out / "split.json").read_text()
    assert r["data"]["test"] == json.loads((out / "metrics.json").read_text())["data"]["test"]
    (tmp_path / "empty").mkdir()
    bad = runner.invoke(app, ["train", "--split-from", str(tmp_path / "empty"), "--out", str(tmp_path / "b")])
    assert bad.exit_code == 1 and "without a split.json" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "b").exists()


def test_config_file_and_flags(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  image_size: 8\ntrain:\n  epochs: 5\n  batch_size: 256\nmodel_typo: 1\n")
    r = runner.invoke(app, ["train", "--config", str(cfg), "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "Unknown key(s) model_typo" in r.output
    cfg.write_text("data:\n  image_size: 8\ntrain:\n  epochs: 5\n  batch_size: 256\nstudent: cifar_resnet8\n")
    r = json.loads(_ok(["train", "--config", str(cfg), "--epochs", "1", "--out", str(tmp_path / "y"),
                        "--json"]).output)
    assert r["rows"][0]["epochs"] == 1 and r["rows"][0]["architecture"] == "cifar_resnet8"
    saved = json.loads((tmp_path / "y" / "config.json").read_text())
    assert saved["train"]["batch_size"] == 256 and saved["train"]["epochs"] == 1


@pytest.mark.parametrize("args, message", [
    (["distill", "--method", "dst"], "Unknown method 'dst'. Known:"),
    (["train", "--train-ratio", "1.5"], "--train-ratio must be between 0 and 1"),
    (["train", "--data", "/no/such/folder"], "Data folder '/no/such/folder' does not exist"),
    (["train", "--resume"], "--resume needs --out"),
    (["train", "--optimizer", "adam"], "optimizer must be sgd or adamw"),
    (["train", "--model", "resnet_does_not_exist"], "Unknown model"),
    (["evaluate", "/no/ckpt"], "does not exist"),
    (["distill", "-p", "temperature"], "must look like KEY=VALUE"),
    (["distill", "-p", "temprature=3", "--teacher", "/no/ckpt"], "does not exist"),
])
def test_bad_input_is_one_red_line(args, message, tmp_path):
    r = runner.invoke(app, args + (["--out", str(tmp_path / "o")] if args[0] != "evaluate" and "--resume" not in args else []))
    assert r.exit_code == 1, r.output
    assert message in r.output
    assert "Traceback" not in r.output


def test_existing_run_folder_is_never_overwritten(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("precious")
    r = runner.invoke(app, ["train", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "already exists" in r.output
    assert (tmp_path / "o" / "keep.txt").read_text() == "precious"


def test_evaluate_embedding_tasks(tmp_path):
    out = tmp_path / "ml"
    _ok(["metric-learn", "--method", "nsl", "--epochs", "1", "--image-size", "8", "--batch-size", "64",
         "--out", str(out), "--json"])
    ckpt = out / "checkpoints" / "best"
    r = json.loads(_ok(["evaluate", str(ckpt), "--task", "knn", "--knn-k", "5", "--json"]).output)
    assert 0.1 < r["knn_accuracy"] <= 1.0 and r["knn_k"] == 5
    r = json.loads(_ok(["evaluate", str(ckpt), "--task", "retrieval", "--metric", "cosine", "--k", "1", "--k", "3",
                        "--json"]).output)
    single = r["retrieval"]["single"]
    assert set(single["precision_at_k"]) == {"1", "3"} and 0 < single["map"] <= 1
    bad = runner.invoke(app, ["evaluate", str(ckpt), "--task", "retrival"])
    assert bad.exit_code == 1 and "--task must be" in bad.output
