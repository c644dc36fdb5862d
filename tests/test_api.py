"""The Python API: the README's example runs as written, and the functions return the commands' results."""
import re
from pathlib import Path

import pytest

from compress.errors import UserInputError

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_example_runs(tmp_path, monkeypatch):
    code = re.search(r"## Python API\n.*?```python\n(.*?)```", README.read_text(), re.S)
    assert code, "README.md has a '## Python API' section with a python block"
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code.group(1), "README.md", "exec"), scope)  # noqa: S102 - the documented example, as a user runs it
    student, files, report = scope["student"], scope["files"], scope["report"]
    assert [r.role for r in student.rows] == ["teacher (given)", "baseline", "student"]
    assert student.chosen.startswith("student: the teacher (cifar_resnet20) pruned in depth")
    assert {"model.onnx", "model_int8.onnx"} <= set(files.files)
    est = report.models[0].latency[0]
    assert est["kind"] == "estimate" and est["device"] == "jetson-orin-nano-8gb" and est["latency_ms"] > 0


def test_unknown_settings_are_the_commands_one_line():
    from compress.api import distill, export, profile

    with pytest.raises(UserInputError, match="epoch"):
        distill(train={"epoch": 3})
    with pytest.raises(UserInputError, match="int9"):
        export("nowhere", "out", int9=True)
    with pytest.raises(UserInputError, match="no MODEL given"):
        profile()
