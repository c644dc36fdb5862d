"""One name per concept across commands; the old spellings still work, with a one-line notice."""
import json

import pytest
from typer.testing import CliRunner

from compress.cli import app

runner = CliRunner()
BASE = ["profile", "cifar_resnet8", "--num-classes", "10", "--json"]


def _profile(*args: str) -> tuple[dict, str]:
    r = runner.invoke(app, [*BASE, *args])
    assert r.exit_code == 0, r.output
    out = r.stdout
    return json.loads(out[out.index("{"):]), r.output


@pytest.mark.parametrize("old,new", [
    (["--input-size", "32"], ["--image-size", "32"]),
    (["--device", "jetson-nano"], ["--target", "jetson-nano"]),
])
def test_an_old_spelling_gives_the_same_report_and_a_notice(old, new):
    fixed = ["--image-size", "32"] if "--device" in old else ["--target", "jetson-nano"]  # an estimate: deterministic
    ref, ref_log = _profile(*fixed, *new)
    got, log = _profile(*fixed, *old)
    strip = lambda d: json.dumps(d["models"][0]["latency"][0] | {"wall_s": None}, sort_keys=True)  # noqa: E731
    assert strip(got) == strip(ref) and got["models"][0]["input_shape"] == ref["models"][0]["input_shape"]
    assert f"{old[0]}" in log and "deprecated" in log and "deprecated" not in ref_log


def test_image_and_batch_size_are_one_name_everywhere():
    helps = {cmd: runner.invoke(app, [cmd, "--help"], terminal_width=200).output
             for cmd in ("train", "distill", "export", "profile")}
    for cmd, text in helps.items():
        assert "--image-size" in text, cmd
        assert "--input-size" not in text, cmd  # old spellings are accepted, not advertised
        assert "--batch-size" in text and "--out" in text, cmd
