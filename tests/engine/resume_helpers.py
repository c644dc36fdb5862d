"""A small deterministic training run shared by the resume tests and the child process they kill."""
from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import torch

from compress.data import DataConfig, build_data
from compress.engine.train_config import TrainConfig
from compress.engine.loop import fit
from compress.engine.stage import base_manifest
from compress.methods import build_method
from compress.models import create_model

CFG = TrainConfig(epochs=3, batch_size=128, lr=0.05, seed=3, device="cpu", warmup_epochs=0.5)


class EpochRecorder:
    """A progress sink that records which epochs a run actually trained and how many steps each took."""

    def __init__(self) -> None:
        self.epochs: list[str] = []
        self.steps: list[int] = []
        self._epoch = False

    def start(self, description: str, total: int) -> None:
        # "epoch 2/3", or "student epoch 2/3" under a job; other progress (caching images) is not training
        self._epoch = re.search(r"(^| )epoch \d+/\d+$", description) is not None
        if self._epoch:
            self.epochs.append(description)
            self.steps.append(0)

    def advance(self, n: int = 1, info: str = "") -> None:
        if self._epoch:
            self.steps[-1] += n

    def stop(self) -> None:
        pass


def train(run: Path, *, stop: int | None = None, resume: bool = False, progress=None):
    """Three epochs of CE on the embedded digits (8 px); ``stop`` ends it early, ``resume`` continues it."""
    data = build_data(DataConfig(image_size=8), seed=CFG.seed, run_dir=run, reuse_split=resume)
    torch.manual_seed(0)
    student = create_model("cifar_resnet8", num_classes=10, in_chans=1)
    method = build_method("ce", student, None, None, num_classes=10, image_size=8, in_chans=1)
    man = base_manifest("cifar_resnet8", data, role="student", method="ce", config={})
    return fit(method, data, CFG, run, man, resume=resume, stop_after_epochs=stop, progress=progress)


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def killed_run(run: Path, where: str, epoch: int) -> None:
    """Train ``run`` and SIGKILL this process while it writes checkpoint ``last`` of ``epoch``.

    ``where="write"``: inside the folder write, after the weights and before ``train_state.json``;
    ``where="swap"``: between moving the old ``last`` aside and moving the new one in.
    """
    import compress.engine.loop as loop

    if where == "write":
        real_save_state = loop.save_state

        def save_state(directory, state):
            if state["epoch"] == epoch:
                _kill_self()
            real_save_state(directory, state)

        loop.save_state = save_state
    else:
        real_replace, calls = os.replace, []

        def replace(src, dst, *a, **k):
            if Path(dst).name == "last" and Path(src).name == ".last.new":
                calls.append(dst)
                if len(calls) == epoch:
                    _kill_self()
            return real_replace(src, dst, *a, **k)

        os.replace = replace
    train(run)


if __name__ == "__main__":  # python -m tests.engine.resume_helpers RUN write|swap EPOCH
    torch.set_num_threads(1)
    killed_run(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
    sys.exit(3)  # reaching here means the kill never fired
