"""Measure on a Jetson over SSH: copy the model, run trtexec with tegrastats beside it, parse both.

Every local command is an argument list (no local shell). The one string the remote shell sees is
built from ``shlex.quote``-d pieces and a remote folder name made of safe characters only, so paths
with spaces, quotes or ``;`` cannot inject commands. trtexec's "Latency" is H2D + GPU compute + D2H
per query; its throughput is queries/s, so images/s = qps × batch.
"""
from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from compress.errors import DeviceError, UserInputError
from runtime.jetson import PowerSummary, parse_nvpmodel_query, parse_tegrastats, summarize_power
from runtime.latency import LatencyStats
from runtime.ssh import check_host, scp_command, ssh_command
from runtime.trtexec import trtexec_command

__all__ = ["check_host", "profile_remote", "scp_command", "ssh_command", "trtexec_args"]
TRTEXEC_CANDIDATES = ("trtexec", "/usr/src/tensorrt/bin/trtexec")
_MARK = "@@compress-tegrastats@@"
_NVP_MARK = "@@compress-nvpmodel@@"
_STAT = re.compile(r"(min|max|mean|median)\s*=\s*([\d.eE+-]+)\s*ms|percentile\((\d+)%\)\s*=\s*([\d.eE+-]+)\s*ms")

Run = Callable[..., subprocess.CompletedProcess]


def remote_dir_for(path: str | Path) -> str:
    """A remote work folder named from a hash of the model file name (safe characters only)."""
    return "/tmp/compress-profile-" + hashlib.sha256(str(Path(path).name).encode()).hexdigest()[:12]


def trtexec_args(model_file: str, precision: str = "fp16", input_name: str | None = None,
                 input_shape: Sequence[int] | None = None, iterations: int = 200, warmup_ms: int = 500,
                 trtexec: str = "trtexec") -> list[str]:
    """trtexec arguments: ``.engine`` files are loaded, ``.onnx`` files are built at ``precision`` first."""
    is_engine = model_file.endswith((".engine", ".plan"))
    return trtexec_command(onnx=None if is_engine else model_file, engine=model_file if is_engine else None,
                           precision=precision, input_name=input_name or "input",
                           shape=input_shape if input_name and input_shape else None, iterations=iterations,
                           warmup_ms=warmup_ms, spin_wait=True, exe=trtexec)


def remote_script(workdir: str, args: list[str], interval_ms: int = 100) -> str:
    """The remote shell line: tegrastats in the background while trtexec runs, then both logs."""
    q = shlex.quote
    return (f"cd {q(workdir)} && {{ tegrastats --interval {int(interval_ms)} > tegrastats.log 2>&1 & TS=$!; "
            f"{shlex.join(args)} > trtexec.log 2>&1; RC=$?; kill $TS 2>/dev/null; "
            f"cat trtexec.log; echo {q(_MARK)}; cat tegrastats.log; echo {q(_NVP_MARK)}; "
            f"nvpmodel -q 2>/dev/null; exit $RC; }}")


@dataclass(frozen=True)
class TrtexecResult:
    """Parsed trtexec performance summary; times in ms per query, throughput per second."""

    throughput_qps: float
    batch: int
    latency: dict[str, float]  # H2D + GPU compute + D2H: min/max/mean/median/p90/p95/p99
    gpu_compute: dict[str, float]
    h2d: dict[str, float]
    d2h: dict[str, float]

    @property
    def throughput_ips(self) -> float:
        return self.throughput_qps * self.batch

    def to_latency_stats(self, runner: dict[str, Any], iters: int = 0) -> LatencyStats:
        lat = self.latency
        return LatencyStats(kind="measured", batch=self.batch, warmup=0, iters=iters, mean_ms=lat["mean"], std_ms=0.0,
                            min_ms=lat.get("min", lat["mean"]), p50_ms=lat.get("median", lat["mean"]),
                            p90_ms=lat.get("p90", lat["mean"]), p99_ms=lat.get("p99", lat["mean"]),
                            max_ms=lat.get("max", lat["mean"]), throughput_ips=self.throughput_ips, h2d_included=True,
                            runner={**runner, "gpu_compute_ms": dict(self.gpu_compute), "h2d_ms": dict(self.h2d),
                                    "d2h_ms": dict(self.d2h), "throughput_qps": self.throughput_qps})


def _stats(line: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in _STAT.finditer(line):
        if m.group(1):
            out[m.group(1)] = float(m.group(2))
        else:
            out[f"p{m.group(3)}"] = float(m.group(4))
    return out


def parse_trtexec(text: str, batch: int = 1) -> TrtexecResult:
    """Parse the ``=== Performance summary ===`` of trtexec (TensorRT 8.x / 10.x)."""
    found: dict[str, dict[str, float]] = {}
    qps = None
    for line in text.splitlines():
        body = re.sub(r"^\s*(\[[^\]]*\]\s*)*", "", line)
        if body.startswith("Throughput:"):
            m = re.search(r"([\d.eE+-]+)\s*qps", body)
            qps = float(m.group(1)) if m else None
        for key, label in (("latency", "Latency:"), ("gpu", "GPU Compute Time:"), ("h2d", "H2D Latency:"),
                           ("d2h", "D2H Latency:")):
            if body.startswith(label):
                found[key] = _stats(body)
    if qps is None or "latency" not in found or "mean" not in found["latency"]:
        first = next((ln for ln in text.splitlines() if "error" in ln.lower()), "")
        raise DeviceError("trtexec printed no performance summary" + (f" ({first.strip()})" if first else "")
                          + "; check the engine/ONNX and TensorRT version on the device.")
    return TrtexecResult(qps, int(batch), found["latency"], found.get("gpu", {}), found.get("h2d", {}),
                         found.get("d2h", {}))


@dataclass(frozen=True)
class RemoteResult:
    host: str
    latency: LatencyStats
    trtexec: TrtexecResult
    power: PowerSummary | None
    power_mode: dict[str, Any]
    command: list[str]


def _check(proc: subprocess.CompletedProcess, host: str, what: str) -> None:
    if proc.returncode == 255:
        first = (proc.stderr or "").strip().splitlines()[-1:] or ["no message"]
        raise DeviceError(f"cannot reach {host} over SSH ({first[0]}); check the address, that key-based login "
                          "works (ssh -o BatchMode=yes), and the network.")
    if proc.returncode != 0:
        first = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or ["no message"]
        raise DeviceError(f"{what} on {host} failed (exit {proc.returncode}): {first[0]}")


def find_trtexec(host: str, run: Run = subprocess.run) -> str:
    probe = " || ".join(f"command -v {shlex.quote(c)}" for c in TRTEXEC_CANDIDATES)
    proc = run(ssh_command(host, probe), capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode == 255:
        _check(proc, host, "probe")
    path = (proc.stdout or "").strip().splitlines()
    if proc.returncode != 0 or not path:
        raise DeviceError(f"{host} has no trtexec (looked for {', '.join(TRTEXEC_CANDIDATES)}); install TensorRT "
                          "(JetPack) there or pass an ONNX file to measure with ONNX Runtime locally.")
    return path[0]


def profile_remote(host: str, model_path: str | Path, precision: str = "fp16", input_name: str | None = None,
                   input_shape: Sequence[int] | None = None, iterations: int = 200, interval_ms: int = 100,
                   run: Run = subprocess.run) -> RemoteResult:
    """Copy ``model_path`` to ``host``, run trtexec there with tegrastats, bring the numbers back."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise UserInputError(f"'{model_path}' does not exist; --remote needs an .onnx or .engine file.")
    check_host(host)
    trtexec = find_trtexec(host, run)
    workdir = remote_dir_for(model_path)
    remote_name = "model" + (".engine" if model_path.suffix in (".engine", ".plan") else ".onnx")
    _check(run(ssh_command(host, f"mkdir -p {shlex.quote(workdir)}"), capture_output=True, text=True, timeout=60,
               check=False), host, "mkdir")
    _check(run(scp_command(host, model_path, f"{workdir}/{remote_name}"), capture_output=True, text=True,
               timeout=600, check=False), host, "copying the model")
    args = trtexec_args(remote_name, precision, input_name, input_shape, iterations, trtexec=trtexec)
    cmd = ssh_command(host, remote_script(workdir, args, interval_ms))
    proc = run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    _check(proc, host, "trtexec")
    trt_text, _, rest = (proc.stdout or "").partition(_MARK)
    ts_text, _, nvp_text = rest.partition(_NVP_MARK)
    batch = int(input_shape[0]) if input_shape else 1
    result = parse_trtexec(trt_text, batch)
    samples = parse_tegrastats(ts_text)
    power = summarize_power(samples, result.latency["mean"], batch) if samples else None
    mode = parse_nvpmodel_query(nvp_text)
    runner = {"backend": "tensorrt (trtexec)", "precision": precision, "device": host, "device_name": host,
              "power_mode": mode.get("name"), "threads": None}
    return RemoteResult(host, result.to_latency_stats(runner, iterations), result, power, mode, cmd)
