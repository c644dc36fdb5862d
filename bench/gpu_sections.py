"""The sections of ``bench/gpu_check.py``: each takes the :class:`Context` and returns a JSON-able dict with
``status`` (pass | fail | skipped | error) and ``detail`` (one line), plus what it measured."""
from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("torchdistill", "torch_pruning", "onnxruntime", "onnxsim", "accelerate")
# CPU and GPU fp32 runs part at float rounding and drift apart step by step: the first epoch's mean loss
# stays within 2 %; the final accuracies differ as two seeds do (bench/history/diary.md §Issue 29).
LOSS_RTOL = 0.02
OA_MIN_TOL = 0.03


@dataclass
class Context:
    args: Any
    report: Any
    cuda: bool
    device: str
    work: Path
    state: dict[str, Any] = field(default_factory=dict)  # what one section leaves the next (the student)

    @classmethod
    def create(cls, args, report) -> "Context":
        import torch

        cuda = args.device.startswith("cuda") and torch.cuda.is_available()
        if args.device.startswith("cuda") and not cuda:
            raise SystemExit("gpu_check: --device cuda but no CUDA GPU is visible; use --smoke or --device cpu.")
        return cls(args, report, cuda, args.device, Path(tempfile.mkdtemp(prefix="gpu_check-")))

    @property
    def smoke(self) -> bool:
        return bool(self.args.smoke)

    def estimate(self, name: str) -> float:
        """Seconds a section needs on an H100/H200 (a section starts only with this much left)."""
        if self.smoke or not self.cuda:
            return 5.0
        return {"environment": 5, "gpu-tests": 90, "distill": 80, "ddp": 80, "throughput": 70,
                "latency": 15}[name]

    def env(self, **extra: str) -> dict[str, str]:
        path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}

    def run(self, cmd: list[str], *, timeout: float | None = None, env: dict | None = None,
            label: str = "") -> subprocess.CompletedProcess:
        """A subprocess whose output goes to gpu_check.log; its time is bounded by what is left."""
        limit = max(10.0, min(timeout or 1e9, self.report.left()))
        log = self.report.log
        log.write(f"\n===== {label or ' '.join(cmd[:6])}\n$ {' '.join(cmd)}\n")
        log.flush()
        try:
            p = subprocess.run(cmd, env=env or self.env(), capture_output=True, text=True, timeout=limit, cwd=ROOT)
        except subprocess.TimeoutExpired as exc:
            log.write(f"TIMEOUT after {limit:.0f} s\n{exc.stdout or ''}\n{exc.stderr or ''}\n")
            raise
        log.write(p.stdout[-20000:] + "\n--- stderr\n" + p.stderr[-20000:] + f"\nrc={p.returncode}\n")
        log.flush()
        return p

    def compress(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        return self.run([sys.executable, "-m", "compress", *map(str, args)], **kw)

    def torchrun(self, n: int, args: list[str], env: dict | None = None, **kw) -> subprocess.CompletedProcess:
        # ranks on a CPU share its cores: one thread each, or they oversubscribe them
        threads = {} if self.cuda else {"OMP_NUM_THREADS": "1"}
        return self.run(torchrun_cmd(n, ["-m", "compress", *map(str, args)]), env={**(env or self.env()), **threads},
                        **kw)


def torchrun_cmd(n: int, rest: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n), "--master-port",
            str(29400 + os.getpid() % 500), *rest]


def last_line(text: str) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def environment(ctx: Context) -> dict:
    import importlib.metadata as md
    import importlib.util

    import torch

    def version(mod: str) -> str:
        if importlib.util.find_spec(mod) is None:
            return "missing"
        try:
            return md.version({"sklearn": "scikit-learn", "torch_pruning": "torch-pruning", "PIL": "pillow",
                               "yaml": "pyyaml"}.get(mod, mod))
        except md.PackageNotFoundError:
            return "present"

    out: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(), "torch": torch.__version__,
                           "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                           "packages": {m: version(m) for m in ("timm", "numpy", "onnx", *OPTIONAL)}}
    if ctx.cuda:
        p = torch.cuda.get_device_properties(0)
        out.update(gpu=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1),
                   sms=p.multi_processor_count, bf16=torch.cuda.is_bf16_supported(), gpus=torch.cuda.device_count())
        out["nvidia_smi"] = gpu_clocks()
    else:
        from compress.hardware import cpu_info

        out["cpu"] = cpu_info().describe()
    try:
        import onnxruntime

        out["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:  # optional here: the packages table already says it is missing
        pass
    what = out.get("gpu") or out.get("cpu")
    return {"status": "pass", "detail": f"{what}; torch {torch.__version__} (CUDA {torch.version.cuda})", **out}


def gpu_clocks() -> str:
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi not found"
    q = "name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu,utilization.gpu"
    p = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"], capture_output=True, text=True)
    return p.stdout.strip() or p.stderr.strip()


def gpu_tests(ctx: Context) -> dict:
    import xml.etree.ElementTree as ET

    xml = ctx.args.out / "gpu_tests.xml"
    target = ["tests/engine/test_cuda.py"] if ctx.smoke else ["tests"]
    p = ctx.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "-rfE",
                 "--continue-on-collection-errors", f"--junitxml={xml}", *target], timeout=240, label="pytest -m gpu")
    if not xml.is_file():
        return {"status": "error", "detail": f"pytest wrote no report (rc {p.returncode}): {last_line(p.stderr)}"}
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [f"{c.get('classname')}::{c.get('name')}: {(c[0].get('message') or '')[:200]}" for c in suite.iter("testcase")
              if len(c) and c[0].tag in ("failure", "error")]
    ran = counts["tests"] - counts["skipped"]
    ok = not failed and (ran > 0 or not ctx.cuda)
    detail = f"{ran - len(failed)} passed, {len(failed)} failed, {counts['skipped']} skipped"
    return {"status": "pass" if ok else "fail", "detail": detail, **counts, "failed": failed}


SECTION_FUNCS: dict[str, Callable[[Context], dict]] = {"environment": environment, "gpu-tests": gpu_tests}


def history(run: Path) -> list[dict[str, str]]:
    with (run / "history.csv").open() as fh:
        return list(csv.DictReader(fh))


def to_markdown(data: dict) -> str:
    """One table of sections, then each section's own table where it has one."""
    lines = ["# GPU check", "", f"elapsed {data.get('elapsed_s', 0)} s; args: "
             + ", ".join(f"{k}={v}" for k, v in data["args"].items() if k in ("data", "device", "time_limit", "smoke")),
             "", "| section | status | seconds | detail |", "| --- | --- | ---: | --- |"]
    for name, r in data["sections"].items():
        lines.append(f"| {name} | {r.get('status')} | {r.get('seconds', '')} | {str(r.get('detail', '')).replace('|', '/')} |")
    for name, r in data["sections"].items():
        if r.get("table"):
            lines += ["", f"## {name}", "", *r["table"]]
    return "\n".join(lines) + "\n"


def wait_for(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return path.exists()


def dump(obj: Any) -> str:
    return json.dumps(obj, default=str)


def _register() -> None:
    from gpu_runs import ddp, distill, latency
    from gpu_throughput import throughput

    SECTION_FUNCS.update({"distill": distill, "ddp": ddp, "throughput": throughput, "latency": latency})


_register()  # last: those modules import this one's helpers
