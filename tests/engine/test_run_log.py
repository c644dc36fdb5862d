"""Every run writes training_curves.png; --log tensorboard adds event files; a missing package is one line."""
import builtins

import pytest
from typer.testing import CliRunner

from compress.cli import app

runner = CliRunner()
TINY = ["train", "--model", "cifar_resnet8", "--image-size", "8", "--batch-size", "256", "--device", "cpu",
        "--epochs", "2"]


def test_curves_png_and_tensorboard_events(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = runner.invoke(app, [*TINY, "--log", "tensorboard", "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    png = tmp_path / "r" / "training_curves.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    acc = EventAccumulator(str(tmp_path / "r" / "tensorboard"))
    acc.Reload()
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2] and "val/score" in acc.Tags()["scalars"]


def test_missing_tensorboard_fails_before_training(tmp_path, monkeypatch):
    real = builtins.__import__

    def no_tb(name, *a, **k):
        if name == "tensorboard" or name.startswith("tensorboard."):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tb)
    r = runner.invoke(app, [*TINY, "--log", "tensorboard", "--out", str(tmp_path / "r")])
    assert r.exit_code == 1 and "pip install tensorboard" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "r").exists()
