"""A run stopped after epoch k and resumed ends with exactly the weights of an uninterrupted run."""
import os
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from compress.data import DataConfig, build_data
from compress.engine.train_config import TrainConfig
from compress.engine.loop import fit
from compress.engine.stage import base_manifest
from compress.methods import build_method
from compress.models import create_model

CFG = TrainConfig(epochs=3, batch_size=128, lr=0.05, seed=3, device="cpu", warmup_epochs=0.5)


def _train(run, stop=None, resume=False):
    data = build_data(DataConfig(image_size=8), seed=CFG.seed, run_dir=run, reuse_split=resume)
    torch.manual_seed(0)
    student = create_model("cifar_resnet8", num_classes=10, in_chans=1)
    method = build_method("ce", student, None, None, num_classes=10, image_size=8, in_chans=1)
    man = base_manifest("cifar_resnet8", data, role="student", method="ce", config={})
    return fit(method, data, CFG, run, man, resume=resume, stop_after_epochs=stop)


def test_resume_matches_uninterrupted_run(tmp_path):
    _train(tmp_path / "full")
    try:
        _train(tmp_path / "cut", stop=1)
    except Exception:
        pass  # _finish still runs after an early stop; only the weights matter here
    r = _train(tmp_path / "cut", resume=True)
    a = load_file(str(tmp_path / "full" / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "checkpoints" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["epoch"] for h in r.history] == [1, 2, 3]


def test_killed_cli_run_resumes_to_identical_weights(tmp_path):
    args = [sys.executable, "-m", "compress", "train", "--model", "cifar_resnet8", "--image-size", "8",
            "--epochs", "3", "--batch-size", "128", "--seed", "5", "--device", "cpu", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(args + ["--out", str(tmp_path / "full")], check=True, env=env, capture_output=True)
    proc = subprocess.Popen(args + ["--out", str(tmp_path / "cut")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    state = tmp_path / "cut" / "checkpoints" / "last" / "train_state.json"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.exists(), "the run never wrote its first checkpoint"
    done = subprocess.run(args + ["--out", str(tmp_path / "cut"), "--resume"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a = load_file(str(tmp_path / "full" / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "checkpoints" / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_before_first_checkpoint_keeps_initial_weights(tmp_path):
    """--resume on a run killed before its first checkpoint must still start from the initial weights."""
    from safetensors.torch import save_file

    from compress.engine.stage import StageSpec, run_stage

    torch.manual_seed(123)
    init = create_model("cifar_resnet8", num_classes=10, in_chans=1).state_dict()
    save_file({k: v.contiguous() for k, v in init.items()}, str(tmp_path / "init.safetensors"))
    data = build_data(DataConfig(image_size=8), seed=0, run_dir=tmp_path / "run")
    frozen = TrainConfig(epochs=1, batch_size=128, lr=1e-9, weight_decay=0.0, momentum=0.0, seed=0, device="cpu")
    spec = StageSpec(role="student", arch="cifar_resnet8", method="ce", train=frozen, run_dir=tmp_path / "run",
                     config={}, resume=True, init={"weights": str(tmp_path / "init.safetensors")})
    run_stage(spec, data)
    trained = load_file(str(tmp_path / "run" / "checkpoints" / "last" / "model.safetensors"))
    convs = [k for k in init if k.endswith("conv1.weight") or k.endswith("fc.weight")]
    # lr 1e-9 keeps the weights where they started; a fresh random init would differ by ~0.1
    assert convs and all(torch.allclose(trained[k], init[k], atol=1e-6) for k in convs)


def test_run_killed_while_finishing_is_finished_on_resume(tmp_path, monkeypatch):
    """metrics.json (the stage's done marker) comes last: a kill between the test evaluation and it
    leaves the stage unfinished, and the resume writes the test metrics into the best manifest."""
    import pytest

    import compress.engine.run_log as run_log
    from compress.checkpoint import read_manifest
    from compress.engine.stage import finished

    def killed(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_log, "plot_curves", killed)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.json").exists() and not finished(tmp_path / "run", CFG.epochs)
    monkeypatch.undo()
    r = _train(tmp_path / "run", resume=True)
    assert [h["epoch"] for h in r.history] == [1, 2, 3] and finished(tmp_path / "run", CFG.epochs)
    test = read_manifest(tmp_path / "run" / "checkpoints" / "best").metrics["test"]
    assert test["oa"] == r.test["oa"]
