"""Data-parallel training on CPU with gloo and 2 processes (torchrun), and per-step host syncs.

(a) 2 ranks × B/2 with --sync-bn reach the weights of 1 process × B (tolerance: 1e-4 relative, what
    summing gradients over two ranks and E[x²]−E[x]² statistics leave after a few float32 steps);
(b) a 2-rank run stopped after an epoch resumes to the uninterrupted 2-rank result;
(c) a method whose loss relates the samples of a batch (RKD, gathered across ranks) runs under 2 ranks;
(d) host reads per epoch do not grow with the number of steps.
"""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

BASE = ["--model", "cifar_resnet8", "--image-size", "8", "--batch-size", "256", "--lr", "0.05", "--seed", "3",
        "--device", "cpu", "--amp", "off", "--workers", "0", "--json"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _torchrun(args, n=2, **kw):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n), "--master-port",
           str(29500 + os.getpid() % 1000), "-m", "compress", *args]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600, **kw)


def _single(args):
    return subprocess.run([sys.executable, "-m", "compress", *args], env=ENV, capture_output=True, text=True,
                          timeout=600)


def _weights(run):
    return load_file(str(run / "checkpoints" / "last" / "model.safetensors"))


def test_two_ranks_with_sync_bn_match_one_process(tmp_path):
    one = _single(["train", *BASE, "--epochs", "1", "--sync-bn", "--out", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    two = _torchrun(["train", *BASE, "--epochs", "1", "--sync-bn", "--out", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), k
    man = json.loads((tmp_path / "two" / "checkpoints" / "best" / "manifest.json").read_text())
    assert man["world_size"] == 2
    assert json.loads(two.stdout)["rows"][0]["epochs"] == 1  # rank 0 alone printed the result


def test_two_rank_run_resumes_to_the_same_weights(tmp_path):
    import signal
    import time

    full = _torchrun(["train", *BASE, "--epochs", "2", "--out", str(tmp_path / "full")])
    assert full.returncode == 0, full.stderr
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
           str(29500 + os.getpid() % 1000), "-m", "compress", "train", *BASE, "--epochs", "2",
           "--out", str(tmp_path / "cut")]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state = tmp_path / "cut" / "checkpoints" / "last" / "train_state.json"
    deadline = time.time() + 300
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both ranks, mid epoch 2
    proc.wait()
    from compress.engine.state import load_state

    assert load_state(state.parent)["epoch"] == 1, "the run was not stopped after its first epoch"
    resumed = _torchrun(["train", "--resume", "--out", str(tmp_path / "cut"), "--json"])
    assert resumed.returncode == 0, resumed.stderr
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_batch_relating_method_runs_on_two_ranks(tmp_path):
    t = _single(["train", *BASE, "--epochs", "1", "--out", str(tmp_path / "t")])
    assert t.returncode == 0, t.stderr
    d = _torchrun(["distill", "--teacher", str(tmp_path / "t"), "--method", "rkd", "--student", "cifar_resnet8",
                   "--no-baseline", *[a for a in BASE if a not in ("--model", "cifar_resnet8")], "--epochs", "1",
                   "--out", str(tmp_path / "d")])
    assert d.returncode == 0, d.stderr
    rows = {r["role"]: r for r in json.loads(d.stdout)["rows"]}
    assert set(rows) == {"teacher (given)", "student"}
    assert rows["student"]["method"] == "rkd" and rows["student"]["test_oa"] is not None


@pytest.mark.parametrize("method", ["kd", "pskd"])
def test_host_syncs_per_epoch_do_not_grow_with_steps(tmp_path, monkeypatch, method):
    import copy
    import dataclasses

    from compress.data import DataConfig, build_data
    from compress.engine.train_config import TrainConfig
    from compress.engine.loop import fit
    from compress.engine.stage import base_manifest
    from compress.methods import build_method
    from compress.models import create_model

    data = build_data(DataConfig(image_size=8, val_fraction=0.0), run_dir=tmp_path / "d")
    teacher = create_model("cifar_resnet8", 10, 1).eval()
    counts = []
    for steps in (3, 6):
        train = copy.copy(data.train)
        train.indices = train.indices[: steps * 64]
        d = dataclasses.replace(data, train=train, val=None)
        m = build_method(method, create_model("cifar_resnet8", 10, 1), teacher, {}, num_classes=10, image_size=8,
                         in_chans=1)
        calls = {"n": 0}
        for name in ("item", "__float__", "__bool__", "__int__", "tolist"):
            real = getattr(torch.Tensor, name)

            def counted(self, *a, _real=real, **k):
                calls["n"] += 1
                return _real(self, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, counted)
        import compress.engine.loop as loop

        monkeypatch.setattr(loop, "_finish", lambda *a, **k: None)  # the test split's evaluation is not the loop
        fit(m, d, TrainConfig(epochs=1, batch_size=64 if method == "kd" else 32, device="cpu", amp="off",
                              log_every=1000), tmp_path / f"r{steps}", base_manifest("cifar_resnet8", d, role="s",
                                                                                     method=method, config={}),
            workers=1)
        monkeypatch.undo()
        counts.append(calls["n"])
    assert counts[0] == counts[1], counts
