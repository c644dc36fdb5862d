"""A resumed run continues where the last checkpoint left it, also after a kill inside a checkpoint write.

Training is deterministic, so a resume that silently retrains from scratch reaches the same weights:
these tests count the epochs and steps the resumed run actually trains.
"""
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from compress.engine.state import load_state
from tests.engine.resume_helpers import EpochRecorder, train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)  # the killed child runs on one thread: the same kernels, the same bits
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run's final weights."""
    run = tmp_path_factory.mktemp("full")
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(run)
    finally:
        torch.set_num_threads(prev)
    return load_file(str(run / "checkpoints" / "last" / "model.safetensors"))


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _final(run: Path):
    return load_file(str(run / "checkpoints" / "last" / "model.safetensors"))


def test_resume_trains_only_the_epochs_left(tmp_path, reference):
    run = tmp_path / "cut"
    first = EpochRecorder()
    train(run, stop=1, progress=first)
    assert first.epochs == ["epoch 1/3"]
    again = EpochRecorder()
    r = train(run, resume=True, progress=again)
    assert again.epochs == ["epoch 2/3", "epoch 3/3"]
    assert again.steps == first.steps * 2 and first.steps[0] > 0
    assert [h["epoch"] for h in r.history] == [1, 2, 3]
    assert _same(_final(run), reference)


def _kill_child(run: Path, where: str, epoch: int) -> None:
    proc = subprocess.run([sys.executable, "-m", "tests.engine.resume_helpers", str(run), where, str(epoch)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def test_kill_inside_a_checkpoint_write_rolls_back_to_the_previous_one(tmp_path, reference):
    run = tmp_path / "run"
    _kill_child(run, "write", 2)
    ckpt = run / "checkpoints"
    assert (ckpt / ".last.new" / "model.safetensors").is_file()  # the half-written epoch-2 folder
    assert not (ckpt / ".last.new" / "train_state.json").exists()
    assert load_state(ckpt / "last")["epoch"] == 1  # the complete epoch-1 folder is untouched
    seen = EpochRecorder()
    train(run, resume=True, progress=seen)
    assert seen.epochs == ["epoch 2/3", "epoch 3/3"]
    assert not (ckpt / ".last.new").exists() and not (ckpt / ".last.old").exists()
    assert _same(_final(run), reference)


def test_kill_inside_the_swap_rolls_forward_to_the_new_checkpoint(tmp_path, reference):
    run = tmp_path / "run"
    _kill_child(run, "swap", 2)
    ckpt = run / "checkpoints"
    assert not (ckpt / "last").exists()  # moved aside, the new one not yet in
    assert load_state(ckpt / ".last.new")["epoch"] == 2 and load_state(ckpt / ".last.old")["epoch"] == 1
    seen = EpochRecorder()
    train(run, resume=True, progress=seen)
    assert seen.epochs == ["epoch 3/3"]  # epoch 2 was complete: only epoch 3 is left
    assert not (ckpt / ".last.new").exists() and not (ckpt / ".last.old").exists()
    assert _same(_final(run), reference)
