"""Build an engine on a Jetson over SSH: copy the ONNX and script, run trtexec there, copy results back.

Every command is an argument list (no local shell). The remote folder name is made of safe
characters only, and everything interpreted by the remote shell goes through ``shlex.quote``,
so local paths with spaces, quotes or ``;`` cannot inject commands on either side.
"""
from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from compress.errors import DeviceError
from export.tensorrt import BUILD_LOG, ENGINE_NAME, SCRIPT_NAME, TIMING_CACHE, sidecar_path
from runtime.ssh import check_host, parse_host, run_command

__all__ = ["check_host", "plan_remote_build", "run_remote_build"]


def remote_dir_for(local_dir: Path, stem: str = "compress-build") -> str:
    """A remote folder (relative to the remote home) built from safe characters only."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", local_dir.name).strip("-.") or "export"
    digest = hashlib.sha256(str(local_dir.resolve()).encode()).hexdigest()[:8]
    return f"{stem}/{safe[:40]}-{digest}"


@dataclass
class RemoteStep:
    """One command: a name for errors and its argv."""

    name: str
    argv: list[str]


@dataclass
class RemotePlan:
    """The steps of a remote build, in order, and where the results land locally."""

    host: str
    remote_dir: str
    steps: list[RemoteStep] = field(default_factory=list)
    fetched: list[Path] = field(default_factory=list)


def plan_remote_build(host: str, local_dir: Path, onnx_name: str, script_name: str = SCRIPT_NAME) -> RemotePlan:
    """Steps: mkdir on the target, scp the ONNX + script, run the script, scp engine/sidecar/log/cache back."""
    target = parse_host(host)
    local_dir = Path(local_dir).resolve()  # absolute: a ':' in a relative path would read as host:path
    rdir = remote_dir_for(local_dir)
    qdir = shlex.quote(rdir)
    back = [ENGINE_NAME, sidecar_path(ENGINE_NAME).name, BUILD_LOG, TIMING_CACHE]
    steps = [
        RemoteStep("create the remote folder", target.ssh(f"mkdir -p {qdir}")),
        RemoteStep("copy the ONNX and build script", target.scp_to([local_dir / onnx_name, local_dir / script_name],
                                                                   f"{rdir}/")),
        RemoteStep("build the engine with trtexec", target.ssh(f"cd {qdir} && bash {shlex.quote(script_name)}")),
        RemoteStep("copy the engine back", target.scp_from([f"{rdir}/{n}" for n in back], str(local_dir) + "/")),
    ]
    return RemotePlan(host=str(target), remote_dir=rdir, steps=steps, fetched=[local_dir / n for n in back])


Run = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run_remote_build(plan: RemotePlan, run: Run = run_command) -> list[Path]:
    """Execute ``plan``; a failing step raises ``DeviceError`` naming it with the last stderr line."""
    for step in plan.steps:
        try:
            res = run(step.argv)
        except FileNotFoundError as exc:
            raise DeviceError(f"remote build: '{step.argv[0]}' is not installed here (needed to {step.name}).") from exc
        except subprocess.TimeoutExpired as exc:
            raise DeviceError(f"remote build on {plan.host}: '{step.name}' timed out.") from exc
        if res.returncode != 0:
            tail = (res.stderr or res.stdout or "").strip().splitlines()[-1:] or ["no output"]
            raise DeviceError(f"remote build on {plan.host} failed to {step.name} (exit {res.returncode}): {tail[0][:200]}")
    return [p for p in plan.fetched if p.exists()]
