"""``compress metric-learn`` / ``compress cross-source`` through typer's CliRunner."""
import json

import typer
from typer.testing import CliRunner

from compress.cli.retrieval import register
from tests.conftest import write_folder

app = typer.Typer()
register(app)


def test_bad_labeled_ratio_is_one_red_line(tmp_path):
    res = CliRunner().invoke(app, ["metric-learn", "--data", str(tmp_path), "--labeled-ratio", "5",
                                   "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and "fraction in (0, 1)" in res.output


def test_cross_source_needs_both_sources(tmp_path):
    res = CliRunner().invoke(app, ["cross-source", "--source1", str(tmp_path)])
    assert res.exit_code == 1 and "--source2" in res.output


def test_metric_learn_json(tmp_path):
    data = write_folder(tmp_path / "d", classes=2, per_class=6, size=12)
    res = CliRunner().invoke(app, ["metric-learn", "--data", str(data), "--method", "nsl", "--backbone",
                                   "cifar-resnet8", "--labeled-ratio", "0.5", "--epochs", "1", "--batch-size", "6",
                                   "--image-size", "12", "--device", "cpu", "--embedding-dim", "4", "-p",
                                   "scale_tau=0.1", "--out", str(tmp_path / "run"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["method"] == "nsl" and out["model_kwargs"] == {"backbone": "cifar-resnet8", "embedding_dim": 4}
    assert out["data"]["labelled"] == 6 and 0 <= out["evaluation"]["knn_accuracy"] <= 1
