"""`compress distill --teacher CKPT` without `--data` trains on the teacher's own folder and split."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from compress.cli import app
from compress.data.bundle import DataConfig
from compress.jobs.teacher_data import explicit_fields, recorded_data

runner = CliRunner()


def _teacher(tmp_path, folder):
    out = tmp_path / "teacher"
    r = runner.invoke(app, ["train", "--data", str(folder), "--model", "cifar_resnet8", "--epochs", "1",
                            "--image-size", "16", "--train-ratio", "0.5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_distill_without_data_uses_the_teachers_folder_and_split(tmp_path, tiny_folder):
    teacher = _teacher(tmp_path, tiny_folder)
    out = tmp_path / "student"
    r = runner.invoke(app, ["distill", "--teacher", str(teacher), "--student", "cifar_resnet8", "--epochs", "1",
                            "--no-baseline", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "split.json").read_text()) == json.loads((teacher / "split.json").read_text())
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["data"]["data"] == str(tiny_folder) and cfg["data"]["image_size"] == 16
    assert cfg["data"]["split"] == str((teacher / "split.json").resolve())
    assert json.loads(r.output)["data"]["test"] == 9  # half of 18 images, as the teacher's split says


def test_flags_given_on_top_of_the_recorded_data_win(tmp_path, tiny_folder):
    teacher = _teacher(tmp_path, tiny_folder)
    given = explicit_fields(DataConfig(image_size=24, normalize="none"))
    assert given == {"image_size": 24, "normalize": "none"}
    cfg = recorded_data(teacher, given)
    assert (cfg.data, cfg.image_size, cfg.normalize) == (str(tiny_folder), 24, "none")
    assert cfg.split == str((teacher / "split.json").resolve())


def test_a_relative_data_folder_is_found_from_another_working_folder(tmp_path, tiny_folder, monkeypatch):
    from compress.models.restore import load_checkpoint
    from compress.jobs.qad import data_for_checkpoint

    monkeypatch.chdir(tmp_path)
    teacher = _teacher(tmp_path, "data")  # `--data data`: relative to tmp_path
    assert json.loads((teacher / "config.json").read_text())["data"]["data"] == "data"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # where `data` does not exist: the split's absolute root does
    assert recorded_data(teacher).data == str(tiny_folder.resolve())
    bundle = data_for_checkpoint(load_checkpoint(teacher / "checkpoints" / "best"), tmp_path / "q", seed=0)
    assert len(bundle.test) == 9
    r = runner.invoke(app, ["distill", "--teacher", str(teacher), "--student", "cifar_resnet8", "--epochs", "1",
                            "--no-baseline", "--out", str(tmp_path / "student"), "--json"])
    assert r.exit_code == 0, r.output
    tiny_folder.rename(tmp_path / "moved")  # the data gone: the recorded name is kept and fails as usual
    assert recorded_data(teacher).data == "data"
