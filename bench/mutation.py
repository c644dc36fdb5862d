"""Mutation check of the critical modules: does the test suite notice a planted bug?

    python bench/mutation.py                      # every target (≈10–15 min on two cores)
    python bench/mutation.py --only checkpoint    # targets whose path contains "checkpoint"
    python bench/mutation.py --list               # the mutants, without running anything

Each mutant (one small AST edit, see ``bench/mutation_ops.py``) of a function named in
``bench/mutation_targets.py`` runs that target's tests in a forked child that imports the mutated module
instead of the file (the heavy third-party imports are done once, before forking). A mutant is *killed*
when a test fails (or it runs past 3× the clean run's time), *survived* when every test passes.
Mutants reviewed as equivalent (no behaviour change any test could see) are listed with the reason in
``bench/mutation_equivalent.txt`` and left out of the score. Prints a table per target and the surviving
mutants; writes ``bench/out/mutation.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == BENCH:
    sys.path.pop(0)  # bench/ must not shadow the project's packages
sys.path.insert(0, str(ROOT))

from bench.mutation_ops import Mutant, check_applies, generate, mutated_code  # noqa: E402
from bench.mutation_targets import TARGETS, Target  # noqa: E402

EQUIVALENT_FILE = BENCH / "mutation_equivalent.txt"
WORKERS = 2  # set from --workers: each child gets cpu_count // WORKERS threads
HEAVY = ("numpy", "torch", "torchvision", "onnx", "onnxruntime", "safetensors", "scipy", "PIL", "yaml", "typer",
         "rich", "pytest", "timm", "matplotlib", "matplotlib.pyplot", "onnxruntime.quantization", "torch_pruning")


def load_equivalent() -> dict[str, str]:
    """key → reason, from ``bench/mutation_equivalent.txt`` (``key  # reason`` per line)."""
    out: dict[str, str] = {}
    if EQUIVALENT_FILE.is_file():
        for line in EQUIVALENT_FILE.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, why = line.partition("  # ")
                out[key.strip()] = why.strip()
    return out


def _install(m: Mutant) -> None:
    """Make ``import <m's module>`` load the mutated code (in this forked child only)."""
    import importlib.abc
    import importlib.machinery

    name = m.path.removesuffix(".py").replace("/", ".")
    code = mutated_code(m, ROOT)

    class Loader(importlib.abc.Loader):
        def create_module(self, spec):
            return None

        def exec_module(self, module):
            exec(code, module.__dict__)

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            if fullname != name:
                return None
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            spec.loader = Loader()
            return spec

    sys.meta_path.insert(0, Finder())


def _child(m: Mutant | None, tests: tuple[str, ...], log: Path) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    # a mutant may write files where it should not (a mutated path is "None"): keep them out of the checkout
    os.chdir(log.parent)
    try:
        import torch

        threads = max(1, (os.cpu_count() or 1) // WORKERS)
        os.environ["COMPRESS_TEST_THREADS"] = str(threads)  # read by tests/conftest.py
        torch.set_num_threads(threads)
        if m is not None:
            _install(m)
        import pytest

        rc = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "--no-header", "-W", "ignore", "--rootdir", str(ROOT),
                          "-c", str(ROOT / "pyproject.toml"), *tests])
    except BaseException:  # noqa: BLE001 - any crash of the child is a failing test run
        import traceback

        traceback.print_exc()
        rc = 99
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(rc))


def _spawn(m: Mutant | None, tests: tuple[str, ...], log: Path) -> int:
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        _child(m, tests, log)
    return pid


def run_jobs(jobs: list[tuple[object, Mutant | None, tuple[str, ...], float]], workers: int, logs: Path,
             progress) -> dict[object, tuple[str, float]]:
    """Run ``(tag, mutant, tests, timeout_s)`` jobs, ``workers`` at a time → tag → (outcome, seconds)."""
    queue, running, out = list(jobs), {}, {}
    while queue or running:
        while queue and len(running) < workers:
            tag, m, tests, limit = queue.pop(0)
            pid = _spawn(m, tests, logs / f"{len(out) + len(running)}-{os.getpid()}.log")
            running[pid] = (tag, time.perf_counter(), limit)
        pid, status = os.waitpid(-1, os.WNOHANG)
        now = time.perf_counter()
        if pid == 0:
            for p, (tag, t0, limit) in list(running.items()):
                if now - t0 > limit:
                    os.killpg(p, signal.SIGKILL)
            time.sleep(0.02)
            continue
        tag, t0, limit = running.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        outcome = "survived" if code == 0 else ("timeout" if code == -signal.SIGKILL and now - t0 > limit
                                                 else "killed")
        out[tag] = (outcome, now - t0)
        progress()
    return out


def _args(t: Target) -> tuple[str, ...]:
    tests = tuple(str(ROOT / x) for x in t.tests)
    return (*tests, "-k", t.select) if t.select else tests


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", default=[], help="targets whose path contains this (repeatable)")
    ap.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    ap.add_argument("--list", action="store_true", help="print the mutants and exit")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "mutation.json"))
    a = ap.parse_args(argv)
    global WORKERS
    WORKERS = max(1, a.workers)
    targets = [t for t in TARGETS if not a.only or any(o in t.path for o in a.only)]
    equivalent = load_equivalent()
    mutants: dict[str, list[Mutant]] = {}
    for t in targets:
        mutants[t.path] = [m for m in generate(t.path, t.functions, ROOT) if check_applies(m, ROOT)]
    if a.list:
        for t in targets:
            for m in mutants[t.path]:
                print(f"{m.path}:{m.line}  {m.key}" + ("  [equivalent]" if m.key in equivalent else ""))
        return 0
    for mod in HEAVY:  # once, before forking: every child starts with them loaded
        try:
            __import__(mod)
        except ImportError:
            pass
    from rich.console import Console
    from rich.progress import Progress

    console = Console(width=150)
    logs = Path(a.out).parent / "mutation-logs"
    logs.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("clean runs", total=len(targets))
        clean = run_jobs([(t.path, None, _args(t), 900.0) for t in targets], a.workers, logs,
                         lambda: bar.advance(task))
        broken = [p for p, (o, _) in clean.items() if o != "survived"]
        if broken:
            console.print(f"the clean tests fail for {', '.join(broken)}; see {logs}", markup=False)
            return 2
        todo = [(m.key, m, _args(t), max(20.0, 3.0 * clean[t.path][1])) for t in targets for m in mutants[t.path]
                if m.key not in equivalent]
        task = bar.add_task("mutants", total=len(todo))
        results = run_jobs(todo, a.workers, logs, lambda: bar.advance(task))
    return report(targets, mutants, equivalent, results, clean, time.perf_counter() - t_start, Path(a.out), console)


def report(targets: list[Target], mutants: dict[str, list[Mutant]], equivalent: dict[str, str], results, clean,
           seconds: float, out: Path, console) -> int:
    from rich.table import Table

    table = Table(title=f"Mutation check ({seconds / 60:.1f} min)")
    for col in ("target", "mutants", "killed", "timeout", "survived", "equivalent", "score", "clean tests (s)"):
        table.add_column(col, justify="left" if col == "target" else "right")
    rows, survivors, total_k, total_n = [], [], 0, 0
    for t in targets:
        ms = mutants[t.path]
        eq = sum(m.key in equivalent for m in ms)
        outcomes = [results[m.key][0] for m in ms if m.key in results]
        k, to, s = outcomes.count("killed"), outcomes.count("timeout"), outcomes.count("survived")
        score = (k + to) / max(1, k + to + s)
        total_k, total_n = total_k + k + to, total_n + k + to + s
        survivors += [m for m in ms if results.get(m.key, ("",))[0] == "survived"]
        rows.append({"target": t.path, "mutants": len(ms), "killed": k, "timeout": to, "survived": s,
                     "equivalent": eq, "score": round(score, 4), "clean_seconds": round(clean[t.path][1], 1)})
        table.add_row(t.path, str(len(ms)), str(k), str(to), str(s), str(eq), f"{100 * score:.1f} %",
                      f"{clean[t.path][1]:.1f}")
    overall = total_k / max(1, total_n)
    table.add_row("all", str(sum(len(v) for v in mutants.values())), "", "", str(len(survivors)),
                  str(sum(m.key in equivalent for v in mutants.values() for m in v)), f"{100 * overall:.1f} %", "")
    console.print(table)
    for m in survivors:
        console.print(f"survived  {m.path}:{m.line}  {m.function}  {m.op}  `{m.snippet}`", markup=False,
                      highlight=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"score": overall, "seconds": round(seconds, 1), "targets": rows,
                               "survivors": [m.key for m in survivors]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
