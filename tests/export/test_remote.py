"""Remote build over SSH: argument lists, safe quoting of a hostile local path, step failures."""
from __future__ import annotations

import shlex
import subprocess

import pytest

from compress.errors import DeviceError, UserInputError
from export.remote import check_host, plan_remote_build, run_remote_build


def test_commands_with_hostile_path(tmp_path):
    local = tmp_path / "out; rm -rf ~ 'x' \"y\" $(z)"
    local.mkdir()
    plan = plan_remote_build("nvidia@orin.local", local, "model_int8.onnx")
    assert plan.remote_dir.startswith("compress-build/out-rm--rf-x-y-z-")
    assert all(c.isalnum() or c in "/._-" for c in plan.remote_dir)
    mkdir, copy, build, back = (s.argv for s in plan.steps)
    assert mkdir[:1] == ["ssh"] and mkdir[-2] == "nvidia@orin.local"
    assert shlex.split(mkdir[-1]) == ["mkdir", "-p", plan.remote_dir]
    # local paths travel as single argv elements (no local shell), absolute, after "--"
    assert copy[0] == "scp" and copy[copy.index("--") + 1] == str(local.resolve() / "model_int8.onnx")
    assert copy[-1] == f"nvidia@orin.local:{plan.remote_dir}/"
    assert shlex.split(build[-1]) == ["cd", plan.remote_dir, "&&", "bash", "build_engine.sh"]
    assert back[-1] == str(local.resolve()) + "/"
    assert f"nvidia@orin.local:{plan.remote_dir}/model.engine" in back
    assert f"nvidia@orin.local:{plan.remote_dir}/model.engine.json" in back


@pytest.mark.parametrize("host", ["-oProxyCommand=touch x", "a b@c", "user@host;ls", ""])
def test_bad_hosts_rejected(host):
    with pytest.raises(UserInputError, match="is not a host"):
        check_host(host)


def test_run_executes_steps_in_order_and_names_failure(tmp_path):
    plan = plan_remote_build("jetson", tmp_path, "model.onnx")
    seen = []

    def fake(argv):
        seen.append(argv)
        code = 1 if argv[0] == "ssh" and "bash" in argv[-1] else 0
        return subprocess.CompletedProcess(argv, code, "", "trtexec: command not found\n")

    with pytest.raises(DeviceError, match="failed to build the engine with trtexec \\(exit 1\\): trtexec: command not"):
        run_remote_build(plan, run=fake)
    assert len(seen) == 3  # stopped at the failing step
    ok = run_remote_build(plan, run=lambda a: subprocess.CompletedProcess(a, 0, "", ""))
    assert ok == []  # nothing really copied back
