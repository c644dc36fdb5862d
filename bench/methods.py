"""Every distillation method on the same teacher/student pair, data split and budget: one table.

    python bench/methods.py --data ../shared/data/AID_150px --train-ratio 0.2 --image-size 64 \
        --epochs 10 --teacher-epochs 20 --seeds 0 1 2 --student mobilenetv3_small_100 --teacher resnet18

The split (``--split-seed``) and the teacher are made once and shared; the CE baseline and every
method are then trained for each ``--seeds`` value with identical TrainConfig. Rows report the
median over seeds of test OA and Cohen's kappa (best-on-validation checkpoint) and the median
training seconds per epoch. Without ``--data`` it runs on the embedded 16 px digits (a smoke test).
Methods run with their default (paper) parameters; ``--param erkt.ratio=0.5`` overrides one.
Re-running with the same ``--out`` reuses the split and every finished run (delete it to start over).
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path


DISTILL_METHODS = ["kd", "dkd", "dist", "at", "sp", "rkd", "fitnet", "pskd", "erkt"]


def _params(items: list[str]) -> dict[str, dict[str, object]]:
    import yaml

    out: dict[str, dict[str, object]] = {}
    for item in items:
        key, _, value = item.partition("=")
        method, _, name = key.partition(".")
        if not (method and name and _):
            raise SystemExit(f"--param expects METHOD.KEY=VALUE, got '{item}'")
        out.setdefault(method, {})[name] = yaml.safe_load(value)
    return out


def _epoch_seconds(run_dir: Path) -> float:
    with open(run_dir / "history.csv", newline="") as fh:
        return statistics.median(float(r["epoch_seconds"]) for r in csv.DictReader(fh))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="class-per-folder root (default: embedded digits)")
    ap.add_argument("--train-ratio", type=float, default=0.2)
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--teacher-epochs", type=int, default=None, help="default: 2 × --epochs")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--student", default="auto")
    ap.add_argument("--teacher", default="auto")
    ap.add_argument("--teacher-checkpoint", type=Path, nargs="+", default=None,
                    help="use this trained teacher (its normalisation) instead of training one; several → ensemble")
    ap.add_argument("--teacher-weight", type=float, nargs="+", default=None, help="ensemble weights, in order")
    ap.add_argument("--student-weights", default=None, help="initial student weights (file or package:NAME)")
    ap.add_argument("--methods", nargs="+", default=DISTILL_METHODS)
    ap.add_argument("--param", action="append", default=[], help="METHOD.KEY=VALUE (repeatable)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=None, help="default: the toolkit's automatic learning rate")
    ap.add_argument("--optimizer", default="sgd")
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-methods"))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from compress.data import DataConfig, build_data
    from compress.engine.train_config import TrainConfig
    from compress.engine.stage import StageSpec, run_stage
    from compress.jobs.train_distill import auto_arch, teacher_for
    from compress.methods import METHODS

    for m in args.methods:
        METHODS.get(m)  # unknown names fail before any training
    overrides = _params(args.param)
    args.out.mkdir(parents=True, exist_ok=True)
    mean_std = None
    if args.teacher_checkpoint:
        from compress.checkpoint import read_manifest

        tm = read_manifest(args.teacher_checkpoint[0])
        mean_std = (tm.mean, tm.std)
    data = build_data(DataConfig(data=args.data, train_ratio=args.train_ratio, image_size=args.image_size),
                      seed=args.split_seed, run_dir=args.out, model_mean_std=mean_std)
    student, teacher_arch = auto_arch(args.student, "student", data), auto_arch(args.teacher, "teacher", data)

    def train_cfg(seed: int, epochs: int) -> TrainConfig:
        return TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                           weight_decay=args.weight_decay, device=args.device, seed=seed)

    config = {"bench": vars(args) | {"out": str(args.out), "json": str(args.json)}}
    if args.teacher_checkpoint:
        from compress.evaluation.classifier import evaluate_classifier
        from compress.hardware import resolve_device

        teacher = teacher_for(tuple(map(str, args.teacher_checkpoint)), tuple(args.teacher_weight or ()), data)
        for c in args.teacher_checkpoint:  # a teacher that saw this run's test images would flatter every row
            if read_manifest(c).split_hash not in (None, "", data.split.hash):
                raise SystemExit(f"teacher {c} was trained on another split than this run's "
                                 f"({read_manifest(c).split_hash} vs {data.split.hash}); pass the same "
                                 "--train-ratio and --split-seed as its training run")
        teacher_arch = "+".join(read_manifest(c).architecture for c in args.teacher_checkpoint)
        tm_ = evaluate_classifier(teacher, data.test, data.class_names, resolve_device(args.device))
        rows = [{"method": f"teacher ({teacher_arch}, given)", "oa": tm_.oa, "kappa": tm_.kappa,
                 "epoch_s": float("nan"), "seeds": 1}]
    else:
        t_row = run_stage(StageSpec(role="teacher", arch=teacher_arch, method="ce",
                                    train=train_cfg(args.split_seed, args.teacher_epochs or 2 * args.epochs),
                                    run_dir=args.out / "teacher", config=config, resume=True, workers=args.workers),
                          data).summary
        teacher = teacher_for((t_row.checkpoint,), (), data)
        rows = [{"method": f"teacher ({teacher_arch})", "oa": t_row.test_oa, "kappa": t_row.test_kappa,
                 "epoch_s": _epoch_seconds(args.out / "teacher"), "seeds": 1}]
    from compress.engine.divergence import TrainingDiverged

    diverged: list[str] = []
    for method in ["ce", *args.methods]:
        params = dict(overrides.get(method, {}))
        oas, kappas, secs = [], [], []
        for seed in args.seeds:
            run_dir = args.out / f"{method}-seed{seed}"
            t0 = time.perf_counter()
            try:
                r = run_stage(StageSpec(role="student", arch=student, method=method, method_params=params,
                                        train=train_cfg(seed, args.epochs), run_dir=run_dir, config=config,
                                        resume=True, workers=args.workers, init={"weights": args.student_weights}),
                              data, teacher=teacher if METHODS.get(method).requires_teacher else None).summary
            except TrainingDiverged as exc:  # recorded as a row, the other methods still run
                Console(stderr=True).print(f"{method} seed {seed}: {exc}")
                diverged.append(f"{method}/seed{seed}")
                continue
            oas.append(r.test_oa)
            kappas.append(r.test_kappa if r.test_kappa is not None else float("nan"))
            secs.append(_epoch_seconds(run_dir) if (run_dir / "history.csv").is_file() else time.perf_counter() - t0)
        if not oas:
            rows.append({"method": method, "oa": float("nan"), "kappa": float("nan"), "epoch_s": float("nan"),
                         "seeds": 0, "diverged": True})
            continue
        rows.append({"method": "baseline (ce)" if method == "ce" else method, "oa": statistics.median(oas),
                     "kappa": statistics.median(kappas), "epoch_s": statistics.median(secs), "seeds": len(oas),
                     "oa_min": min(oas), "oa_max": max(oas), "oa_mean": statistics.fmean(oas),
                     "oa_sd": statistics.stdev(oas) if len(oas) > 1 else 0.0, "oa_all": oas, "params": params})

    title = (f"{data.source_name}: {len(data.train)} train / {len(data.val) if data.val else 0} val / "
             f"{len(data.test)} test, {data.image_size} px; student {student}, teacher {teacher_arch}; "
             f"{args.epochs} epochs, seeds {args.seeds}")
    table = Table(title=title)
    for col in ("method", "OA % (median)", "OA range", "kappa", "s / epoch", "seeds"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in rows:
        rng = f"{r['oa_min'] * 100:.2f}–{r['oa_max'] * 100:.2f}" if "oa_min" in r else ""
        table.add_row(r["method"], f"{r['oa'] * 100:.2f}", rng, f"{r['kappa']:.4f}", f"{r['epoch_s']:.2f}",
                      str(r["seeds"]))
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps({"title": title, "rows": rows, "diverged": diverged}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
