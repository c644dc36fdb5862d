"""How often a gloo data-parallel run aborts at exit: group left to shutdown, left at exit, or finished.

    python bench/ddp_exit.py                  # 12 rounds, 5 ranks (3 variants; 20 rounds of 2 took 9 min on 2 cores)
    python bench/ddp_exit.py --rounds 4 --ranks 3

Each round launches the same ``torchrun`` job three times, interleaved (leave, keep, finish, ...): every
rank joins the group through :func:`compress.engine.distributed.init`, wraps a layer in DDP, runs
differentiable gathers with backward, and returns. ``keep`` unregisters the exit hook, so the group is
left to interpreter shutdown, where a gloo rank can abort with "terminate called without an active
exception" (the failure test_ddp saw in CI); ``leave`` keeps the hook; ``finish`` ends with
:func:`compress.engine.distributed.finish` (exit handlers, flush, no finalization), what ``python -m
compress`` does under torchrun since 2026-12-03 (fourth session). Prints the failures per variant.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path


JOB = """
import atexit, os, torch
from compress.engine import distributed as dist
from torch.distributed.nn.functional import all_gather

def work():
    dist.init(torch.device("cpu"))
    m = dist.wrap(torch.nn.Linear(8, 8), torch.device("cpu"))
    x = torch.randn(64, 8)
    for _ in range(20):
        torch.cat(all_gather(m(x)), 0).sum().backward()

work()
if os.environ["VARIANT"] == "keep":
    atexit.unregister(dist.leave)
if os.environ["VARIANT"] == "finish":
    dist.finish(0)
"""


def launch(script: Path, variant: str, ranks: int, port: int) -> tuple[int, bool]:
    env = {**os.environ, "VARIANT": variant, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks),
                          "--master-port", str(port), str(script)], env=env, capture_output=True, text=True,
                         timeout=300)
    return out.returncode, "terminate called without an active exception" in out.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--ranks", type=int, default=5)
    ap.add_argument("--port", type=int, default=29611)
    args = ap.parse_args()
    failed = {"leave": 0, "keep": 0, "finish": 0}
    aborted = dict(failed)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "job.py"
        script.write_text(JOB)
        for _ in range(args.rounds):
            for variant in failed:
                rc, abort = launch(script, variant, args.ranks, args.port)
                failed[variant] += rc != 0
                aborted[variant] += abort
    print("| exit hook | runs | failed | 'terminate called' |\n| --- | ---: | ---: | ---: |")
    for variant in failed:
        label = {"leave": "leave (destroy_process_group after gc)", "keep": "none (left to shutdown)",
                 "finish": "finish (exit handlers, flush, os._exit)"}[variant]
        print(f"| {label} | {args.rounds} | {failed[variant]} | {aborted[variant]} |")


if __name__ == "__main__":
    main()
