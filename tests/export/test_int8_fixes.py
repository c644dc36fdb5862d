"""The INT8 fixes' switches: auto | on | off (recipe booleans as on/off), asked-for fixes applied in order even
without a budget, and what each did stamped on the file."""
import re

import pytest
from typer.testing import CliRunner

from compress.errors import UserInputError


@pytest.mark.parametrize("value,mode", [("auto", "auto"), ("on", "on"), ("off", "off"), (True, "on"), (False, "off")])
def test_a_switch_reads_auto_on_off_and_booleans(value, mode):
    from export.int8_fixes import fix_choice

    assert fix_choice(value, "--int8-adaround") == mode


def test_a_bad_switch_is_one_line_naming_its_option():
    from export.int8_fixes import fix_choice

    with pytest.raises(UserInputError, match=r"^--int8-adaround must be auto, on or off, got 'maybe'\.$"):
        fix_choice("maybe", "--int8-adaround")


def test_fixes_asked_for_without_a_budget_are_applied_and_stamped(digits_ckpt, tmp_path):
    from compress.cli import app
    from export.onnx import read_metadata

    out = tmp_path / "e"
    r = CliRunner().invoke(app, ["export", str(digits_ckpt), "-o", str(out), "--int8", "--int8-flavour", "trt",
                                 "--no-int8-fallback", "--int8-adaround", "on", "--calib-images", "64",
                                 "--samples", "64"])
    assert r.exit_code in (0, 1), r.output
    meta = read_metadata(out / "model_int8_trt.onnx")
    m = re.fullmatch(r"(\d+) layers, (\S+) % of weights rounded away from nearest, output MSE (\S+) -> (\S+)",
                     meta["adaround"])
    assert m and int(m.group(1)) >= 3 and 0 < float(m.group(2)) < 50 and float(m.group(4)) < float(m.group(3))
    assert meta["bias_correction"] == "off"  # auto without a budget cannot be judged: not applied


def test_auto_fixes_judged_by_the_budget_say_whether_they_were_kept(digits_ckpt, tmp_path):
    from compress.cli import app
    from export.onnx import read_metadata

    out = tmp_path / "e"
    r = CliRunner().invoke(app, ["export", str(digits_ckpt), "-o", str(out), "--int8", "--int8-flavour", "trt",
                                 "--calib-images", "64", "--samples", "64", "--json"])
    assert r.exit_code in (0, 1), r.output
    meta = read_metadata(out / "model_int8_trt.onnx")
    for key in ("adaround", "bias_correction"):  # either what it did, or why it was not kept
        assert re.fullmatch(r"\d+ layers, .*|tried, not kept \(judged no better: .*\)", meta[key]), meta[key]
