"""Does the quick start's task show what a teacher is worth? Teacher, pruned baseline and KD student on the
embedded digits, per training ratio, student budget and seed.

    python bench/quickstart.py --ratios 0.1 0.05 0.7 --budgets 0.25 0.5 --seeds 0 1 2 3 4

Each cell is ``compress distill --train-ratio R --budget B --seed S`` with every other setting at its
default (automatic epochs and rate; the student is the teacher pruned to B of its MACs, its baseline the
same pruned network fine-tuned without the teacher). The table gives medians over seeds of the test OA,
the student's gain over its baseline and its distance to the teacher, and in how many seeds the student
was at least its baseline. Finished cells under ``--out`` are reused.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path


def cell(ratio: float, budget: float, seed: int, out: Path) -> dict[str, float] | str:
    """Test OA (%) of teacher, baseline and student for one cell, or the error line of a failed run."""
    run = out / f"r{ratio}-b{budget}-s{seed}"
    cached = out / f"{run.name}.json"
    if not cached.is_file():
        proc = subprocess.run([sys.executable, "-m", "compress", "distill", "--train-ratio", str(ratio),
                               "--budget", str(budget), "--seed", str(seed), "--out", str(run), "--json"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            return (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        cached.write_text(proc.stdout)
    rows = json.loads(cached.read_text())["rows"]
    return {r["role"].split()[0]: 100 * r["test_oa"] for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.1])
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.25])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--out", type=Path, default=Path("bench/out/quickstart"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print("| ratio | budget | seeds | teacher % | baseline % | KD student % | student − baseline (pt) | "
          "student − teacher (pt) | student ≥ baseline |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for ratio in args.ratios:
        for budget in args.budgets:
            cells = [cell(ratio, budget, s, args.out) for s in args.seeds]
            ok = [c for c in cells if isinstance(c, dict)]
            for c in cells:
                if isinstance(c, str):
                    print(f"<!-- ratio {ratio} budget {budget}: {c} -->")
            if not ok:
                continue
            med = {k: statistics.median(c[k] for c in ok) for k in ("teacher", "baseline", "student")}
            gain = statistics.median(c["student"] - c["baseline"] for c in ok)
            gap = statistics.median(c["student"] - c["teacher"] for c in ok)
            wins = sum(c["student"] >= c["baseline"] for c in ok)
            print(f"| {ratio} | {budget} | {len(ok)} | {med['teacher']:.2f} | {med['baseline']:.2f} | "
                  f"{med['student']:.2f} | {gain:+.2f} | {gap:+.2f} | {wins}/{len(ok)} |")


if __name__ == "__main__":
    main()
