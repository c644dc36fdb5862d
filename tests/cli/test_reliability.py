"""Nothing lost, nothing silent: every case of the reliability issue, as a new user would hit it."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compress.cli import app

runner = CliRunner()
TINY = ["--image-size", "8", "--batch-size", "256", "--device", "cpu"]


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def one_line_error(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, result.output
    return result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 1-epoch train run (cifar_resnet8 on the digits)."""
    out = tmp_path_factory.mktemp("runs") / "t"
    r = runner.invoke(app, ["train", "--model", "cifar_resnet8", "--epochs", "1", *TINY, "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    return out


# ---- export --force -------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["run", "checkpoint", "cwd", "dot", "parent"])
def test_export_never_replaces_the_source_or_the_working_folder(trained, tmp_path, monkeypatch, where):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    target = {"run": str(trained), "checkpoint": str(trained / "checkpoints" / "best"), "cwd": str(work),
              "dot": ".", "parent": str(tmp_path)}[where]
    before, before_run = tree_hash(tmp_path), tree_hash(trained)
    out = one_line_error(runner.invoke(app, ["export", str(trained), "-o", target, "--force", "--samples", "4"]))
    assert "pick a new folder" in out or "current folder" in out or "sub-folder" in out
    assert tree_hash(tmp_path) == before and tree_hash(trained) == before_run


def test_export_force_refuses_a_folder_that_is_not_an_export(trained, tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"\xff\xd8")
    before = tree_hash(tmp_path)
    text = one_line_error(runner.invoke(app, ["export", str(trained), "-o", str(out), "--force", "--samples", "4"]))
    assert "not a compress export" in text and tree_hash(tmp_path) == before


def test_remote_is_checked_before_any_work(trained, tmp_path):
    out = tmp_path / "e"
    text = one_line_error(runner.invoke(app, ["export", str(trained), "-o", str(out), "--trt", "--remote",
                                              "bad host;rm", "--samples", "4"]))
    assert "is not a host" in text and not out.exists()


def test_host_port_goes_to_ssh_and_scp():
    from runtime.ssh import parse_host

    h = parse_host("nvidia@orin.local:2222")
    assert (h.user, h.host, h.port) == ("nvidia", "orin.local", 2222)
    assert h.ssh("ls")[-4:] == ["-p", "2222", "nvidia@orin.local", "ls"]
    assert h.scp_to(["a.onnx"], "d/")[-5:] == ["-P", "2222", "--", "a.onnx", "nvidia@orin.local:d/"]
    assert parse_host("[fe80::1]:22").scp_to(["m"], "x")[-1] == "[fe80::1]:x"


# ---- resume ---------------------------------------------------------------------------------------
@pytest.fixture
def cut_run(tmp_path):
    """A train run on a folder data set with a non-default model, stopped after its first of 3 epochs."""
    from tests.conftest import write_folder

    data = write_folder(tmp_path / "data", classes=3, per_class=8, size=12)
    out = tmp_path / "run"
    from compress.jobs.train_distill import JobConfig, run_train
    from compress.jobs.config_merge import load_job_config

    cfg = load_job_config(JobConfig, {"data": {"data": str(data), "image_size": 12}, "student": "cifar_resnet8",
                                      "train": {"epochs": 3, "batch_size": 8, "lr": 0.05, "device": "cpu"},
                                      "out": str(out)}, command="train", defaults={"method": "ce"})
    import compress.engine.stage as stage

    real = stage.fit
    stage.fit = lambda *a, **k: real(*a, **{**k, "stop_after_epochs": 1})
    try:
        run_train(cfg)  # as if killed after epoch 1 (the early stop still evaluates what it has)
    finally:
        stage.fit = real
    return out


@pytest.mark.parametrize("flag,value", [("--lr", "0.2"), ("--batch-size", "4"), ("--seed", "7"),
                                        ("--model", "cifar_resnet14")])
def test_resume_refuses_a_flag_that_changes_the_run(cut_run, flag, value):
    before = tree_hash(cut_run)
    text = one_line_error(runner.invoke(app, ["train", "--resume", "--out", str(cut_run), flag, value]))
    assert flag.split("/")[0] in text and "saved" in text
    assert tree_hash(cut_run) == before


def test_resume_alone_restores_model_data_and_recipe(cut_run):
    r = runner.invoke(app, ["train", "--resume", "--out", str(cut_run), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["rows"][0]["architecture"] == "cifar_resnet8" and res["rows"][0]["epochs"] == 3
    assert res["data"]["classes"] == 3
    again = runner.invoke(app, ["train", "--resume", "--out", str(cut_run), "--device", "cpu", "--json"])
    assert again.exit_code == 0 and "nothing to do" in json.loads(again.stdout)["note"]
    longer = runner.invoke(app, ["train", "--resume", "--out", str(cut_run), "--epochs", "4", "--json"])
    assert longer.exit_code == 0, longer.output
    assert json.loads(longer.stdout)["rows"][0]["epochs"] == 4
    text = one_line_error(runner.invoke(app, ["train", "--resume", "--out", str(cut_run), "--epochs", "2"]))
    assert "can only extend" in text


def test_distill_resume_refuses_another_method(tmp_path):
    out = tmp_path / "d"
    r = runner.invoke(app, ["distill", "--epochs", "1", *TINY, "--no-baseline", "--teacher-epochs", "1",
                            "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    text = one_line_error(runner.invoke(app, ["distill", "--resume", "--out", str(out), "--method", "dkd"]))
    assert "--method 'dkd' (saved 'kd')" in text


# ---- silent failure -------------------------------------------------------------------------------
def test_a_diverging_run_stops_with_one_line_and_keeps_what_it_had(tmp_path):
    out = tmp_path / "div"
    text = one_line_error(runner.invoke(app, ["train", "--model", "cifar_resnet8", "--epochs", "3", "--lr", "1e6",
                                              *TINY, "--out", str(out)]))
    assert "diverged" in text.lower() and "--lr" in text and "--grad-clip" in text
    assert not out.exists()  # it diverged before any checkpoint: nothing worth keeping, the command can be re-run


# ---- one line, not a traceback ---------------------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["profile", "{garbage}"], "not a readable ONNX model"),
    (["train", "-p", "x=[unclosed"], "not valid YAML"),
    (["train", "--image-size", "100000"], "outside 8–4096 px"),
    (["train", "--image-size", "0"], "outside 8–4096 px"),
    (["train", "--image-size", "3"], "outside 8–4096 px"),
    (["train", "--seed", "-1"], "seed must be in"),
    (["train", "--workers", "-1"], "--workers must be ≥ 0"),
    (["profile", "resnet18", "--image-size", "0"], "outside 8–4096 px"),
    (["distill", "--teacher-weight", "0.5"], "--teacher-weight value(s) for 0 --teacher"),
    (["train", "--weights", "this"], "plain module"),
])
def test_bad_input_is_one_line(args, message, tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_text("this is not a model")
    args = [a.replace("{garbage}", str(garbage)) for a in args]
    if args[0] in ("train", "distill"):
        args += ["--out", str(tmp_path / "o")]
    sys.modules.pop("this", None)
    text = one_line_error(runner.invoke(app, args))
    assert message in text
    assert "this" not in sys.modules  # --weights never imports a module to look for weights
    assert not (tmp_path / "o").exists()


def test_full_disk_while_training_is_one_line_and_resumable(tmp_path, monkeypatch):
    import compress.io as cio

    real = os.replace
    calls = {"n": 0}

    def replace(src, dst):
        calls["n"] += 1
        if str(dst).endswith("model.safetensors") and calls["n"] > 6:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(cio.os, "replace", replace)
    out = tmp_path / "full"
    text = one_line_error(runner.invoke(app, ["train", "--model", "cifar_resnet8", "--epochs", "3", *TINY,
                                              "--out", str(out)]))
    assert "No space left" in text
    monkeypatch.setattr(cio.os, "replace", real)
    r = runner.invoke(app, ["train", "--resume", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output


def test_full_disk_in_profile_and_export_is_one_line(trained, tmp_path, monkeypatch):
    import shutil

    import compress.io as cio

    monkeypatch.setattr(cio.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 0))
    real = os.replace

    def replace(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(cio.os, "replace", replace)
    text = one_line_error(runner.invoke(app, ["profile", "cifar_resnet8", "--num-classes", "10", "--image-size", "16",
                                              "--iters", "2", "--warmup", "1", "-o", str(tmp_path / "p")]))
    assert "No space left" in text
    monkeypatch.setattr(cio.os, "replace", real)
    import onnxruntime.quantization as ortq

    def corrupt(*a, **k):  # what protobuf says when ONNX Runtime's quantiser hits a full disk
        raise RuntimeError("Error parsing message: Wire format was corrupt")

    monkeypatch.setattr(ortq, "quantize_static", corrupt)
    text = one_line_error(runner.invoke(app, ["export", str(trained), "-o", str(tmp_path / "e"), "--int8",
                                              "--calib-images", "32", "--samples", "8"]))
    assert "No space left" in text and "Wire format" not in text and not (tmp_path / "e").exists()


# ---- smaller things -------------------------------------------------------------------------------
def test_files_respect_the_umask(trained):
    mode = (trained / "config.json").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_a_run_that_fails_before_training_leaves_nothing_and_can_be_retried(tmp_path):
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not a state dict")
    out = tmp_path / "r"
    args = ["distill", "--weights", str(bad), "--epochs", "1", *TINY, "--out", str(out)]
    text = one_line_error(runner.invoke(app, args))
    assert "--weights" in text and not out.exists()  # checked before the teacher trained, nothing left behind
    text = one_line_error(runner.invoke(app, args))
    assert "already exists" not in text


def test_calibration_images_are_capped_with_a_note(trained, tmp_path):
    r = runner.invoke(app, ["export", str(trained), "-o", str(tmp_path / "e"), "--int8", "--calib-images", "5000",
                            "--samples", "8", "--max-oa-drop", "100", "--min-top1-agreement", "0"])
    assert r.exit_code == 0, r.output
    assert "INT8 calibration used all" in r.output


def test_parity_table_shows_an_accuracy_drop_as_negative(capsys):
    from types import SimpleNamespace

    from compress.cli.export import render_parity

    row = SimpleNamespace(name="onnxrt-cpu-int8", precision="int8", max_abs=0.1, max_rel=0.1, top1_agreement=0.9,
                          mean_cosine=None, accuracy=90.0, accuracy_drop=6.25, latency_ms=1.0, speedup_vs_fp32=1.5,
                          rule="r", passed=False)
    render_parity(SimpleNamespace(num_samples=16, sample_source="s", task="classify", rows=[row]))
    out = capsys.readouterr().out  # piped, so the table is plain text
    assert "-6.25" in out and "+6.25" not in out


def test_evaluate_scores_an_exported_onnx_file_like_its_checkpoint(trained, tmp_path):
    ck = json.loads(runner.invoke(app, ["evaluate", str(trained), "--json"]).stdout)
    exp = runner.invoke(app, ["export", str(trained), "-o", str(tmp_path / "e"), "--int8", "--calib-images", "64",
                              "--samples", "32", "--json"])
    parity = json.loads((tmp_path / "e" / "parity.json").read_text())
    assert exp.exit_code == (0 if parity["passed"] else 1), exp.output
    fp32 = json.loads(runner.invoke(app, ["evaluate", str(tmp_path / "e" / "model.onnx"), "--json"]).stdout)
    assert fp32["n"] == ck["n"] and fp32["metrics"]["oa"] == pytest.approx(ck["metrics"]["oa"], abs=1e-9)
    q = runner.invoke(app, ["evaluate", str(tmp_path / "e" / "model_int8.onnx"), "--json"])
    assert q.exit_code == 0, q.output
    q = json.loads(q.stdout)
    assert q["n"] == ck["n"] and abs(q["metrics"]["oa"] - ck["metrics"]["oa"]) <= 0.02


def test_erkt_runs_on_the_one_band_digits(tmp_path):
    """The VSM's brightness/contrast work on any bands; its RGB-only units switch off on 1-band data."""
    r = runner.invoke(app, ["distill", "--method", "erkt", "--epochs", "1", "--teacher-epochs", "1", "--no-baseline",
                            *TINY, "--out", str(tmp_path / "e"), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout[r.stdout.index("{"):])["rows"]
    assert rows[-1]["method"] == "erkt" and rows[-1]["test_oa"] is not None


@pytest.mark.parametrize("param", ["grayscale_p=0.2", "saturation=0.3"])
def test_an_rgb_only_vsm_option_on_one_band_data_fails_before_training(param, tmp_path):
    import time

    t0 = time.perf_counter()
    text = one_line_error(runner.invoke(app, ["distill", "--method", "erkt", "-p", param, "--epochs", "1", *TINY,
                                              "--out", str(tmp_path / "e")]))
    assert "need 3-band (RGB) images" in text and "1 band" in text
    assert time.perf_counter() - t0 < 5 and not (tmp_path / "e").exists()  # nothing trained


def test_given_teacher_has_a_row_and_the_weights_report_is_kept(trained, tmp_path):
    from safetensors.torch import save_file

    from compress.models import create_model

    w = tmp_path / "init.safetensors"
    save_file({k: v.contiguous() for k, v in create_model("cifar_resnet8", 10, 1).state_dict().items()}, str(w))
    r = runner.invoke(app, ["distill", "--teacher", str(trained), "--student", "cifar_resnet8", "--weights", str(w),
                            "--epochs", "1", *TINY, "--out", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    assert "teacher (given)" in r.stdout and "student weights:" in r.stdout and "tensors from" in r.stdout
    man = json.loads((tmp_path / "d" / "student" / "checkpoints" / "best" / "manifest.json").read_text())
    assert man["init"]["loaded"] == man["init"]["total"] > 0 and man["init"]["file"] == str(w)
    rows = json.loads((tmp_path / "d" / "metrics.json").read_text())["rows"]
    assert rows[0]["role"] == "teacher (given)" and rows[0]["test_oa"] is not None


def test_evaluate_never_writes_over_a_runs_files(tmp_path):
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out", str(run)]).exit_code == 0
    before = tree_hash(run)
    for out in (run, run / "metrics.json"):
        res = runner.invoke(app, ["evaluate", str(run), "--out", str(out)])
        assert ("already holds files" if out.is_dir() else "is a file") in one_line_error(res)
    assert tree_hash(run) == before


@pytest.mark.parametrize("code,words", [(errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system"),
                                        (errno.ENAMETOOLONG, "too long"), (errno.ENOTDIR, "is a file where a folder"),
                                        (errno.EISDIR, "is a folder where a file"), (errno.ENOSPC, "no space left")])
def test_operating_system_errors_are_one_line_naming_the_file(tmp_path, monkeypatch, code, words):
    import compress.jobs.rundir as rundir

    def refuse(path, obj):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(rundir, "write_json_atomic", refuse)
    res = runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out", str(tmp_path / "run")])
    line = one_line_error(res)
    assert words in line and "config.json" in line


def test_a_name_too_long_is_one_line_and_the_longest_legal_name_works(tmp_path):
    res = runner.invoke(app, ["train", *TINY, "--epochs", "1", "--out", str(tmp_path / ("n" * 300))])
    assert "too long" in one_line_error(res)
    from compress.io import write_text_atomic

    longest = tmp_path / ("é" * 127)  # 254 bytes: legal, and its temporary name must be too
    write_text_atomic(longest, "kept")
    assert longest.read_text() == "kept"


def test_int8_on_a_split_too_small_to_calibrate_says_so(tmp_path):
    from tests.conftest import write_folder

    data = write_folder(tmp_path / "d", classes=3, per_class=6, size=12)
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--data", str(data), "--train-ratio", "0.5", "--model", "cifar_resnet8",
                              *TINY, "--epochs", "1", "--out", str(run)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["export", str(run), "-o", str(tmp_path / "e"), "--int8", "--samples", "4"])
    line = one_line_error(res)
    assert "training split holds only" in line and "raise --calib-images" not in line
    assert not (tmp_path / "e").exists()
