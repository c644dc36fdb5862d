"""Pruning benchmark (issue 13): a teacher pruned to shares of its MACs and recovered with KD, against
MobileNetV3 students trained from scratch with KD at similar MACs, same epochs, same split.

    python bench/prune.py --teacher bench/out/aid20-teacher-lite0 --macs 0.5 0.25 0.16 \
        --scratch mobilenetv3_large_100 mobilenetv3_small_100 --epochs 8 --out bench/out/prune --json bench/out/prune.json

One table: test OA, params, MACs, ONNX Runtime CPU latency (batch 1, 2 threads, median of interleaved
rounds) and a Jetson latency ESTIMATE (per-kernel model, FP16) for every model.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def _row(ckpt: str, label: str, target: str, mode: str | None) -> dict:
    import copy

    from compress.models.restore import load_checkpoint
    from profiles.counting.torch_count import analyze_torch
    from profiles.device import load_device_profile
    from profiles.estimator.estimate import estimate_latency

    ck = load_checkpoint(ckpt)
    m = ck.manifest
    a = analyze_torch(copy.deepcopy(ck.model).to("meta"), (1, m.in_chans, m.image_size, m.image_size))
    est = estimate_latency(a, load_device_profile(target), "fp16", mode).latency_ms
    return {"model": label, "checkpoint": ckpt, "oa": (m.metrics.get("test") or {}).get("oa"), "params": a.params,
            "macs": a.macs, "estimate_ms": est, "image_size": m.image_size}


def _latencies(rows: list[dict], threads: int, rounds: int, iters: int) -> None:
    """``cpu_ms`` of each row: median over ``rounds`` interleaved rounds of its p50 in ONNX Runtime, each model
    in a fresh session used alone (sessions kept alive side by side disturb each other's timings; see
    bench/quantize.py)."""
    import io

    import numpy as np
    import torch

    from compress.models.restore import load_checkpoint
    from runtime.latency import measure_latency
    from runtime.onnxrt import OnnxrtRunner

    models = []
    for r in rows:
        ck = load_checkpoint(r["checkpoint"])
        shape = (1, ck.manifest.in_chans, r["image_size"], r["image_size"])
        buf = io.BytesIO()
        torch.onnx.export(ck.model, (torch.zeros(shape),), buf, input_names=["input"], output_names=["logits"],
                          opset_version=17, dynamo=False)
        models.append((buf.getvalue(), np.random.default_rng(0).standard_normal(shape).astype(np.float32)))
    times: list[list[float]] = [[] for _ in rows]
    for _ in range(rounds):
        for i, (onnx_bytes, x) in enumerate(models):
            runner = OnnxrtRunner(onnx_bytes, providers="cpu", threads=threads)
            times[i].append(measure_latency(runner, {"input": x}, 5, iters).p50_ms)
    for r, t in zip(rows, times):
        r["cpu_ms"] = statistics.median(t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--macs", type=float, nargs="+", default=[0.5, 0.25])
    ap.add_argument("--scratch", nargs="*", default=["mobilenetv3_small_100"])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=None,
                    help="recovery learning rate (default: the toolkit's automatic one for trained weights)")
    ap.add_argument("--scratch-lr", type=float, default=None, help="default: automatic (from scratch)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--importance", default="magnitude", help="magnitude | bn-scale | taylor")
    ap.add_argument("--global", dest="global_pruning", action="store_true", help="rank channels across layers")
    ap.add_argument("--target", default="jetson-orin-nano-8gb")
    ap.add_argument("--power-mode", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path("bench/out/prune"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from compress.config import build_config
    from compress.data.bundle import DataConfig
    from compress.data.split import find_split_file
    from compress.engine.train_config import TrainConfig
    from compress.hardware import cpu_info
    from compress.jobs.prune import PruneJobConfig, run_prune
    from compress.jobs.train_distill import JobConfig, run_distill
    from compress.models.prune import PruneConfig
    from compress.models.restore import load_checkpoint

    teacher = load_checkpoint(args.teacher)
    rows = [_row(str(teacher.path), f"teacher {teacher.manifest.architecture}", args.target, args.power_mode)]
    recover = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size)
    for share in args.macs:
        out = args.out / f"pruned-{share:g}"
        if not (out / "prune.json").is_file():
            run_prune(PruneJobConfig(checkpoint=str(teacher.path), out=str(out), macs=share, recover=True,
                                     resume=out.is_dir(),  # an interrupted run continues where it stopped
                                     prune=PruneConfig(importance=args.importance, global_pruning=args.global_pruning),
                                     train=recover))
        res = json.loads((out / "prune.json").read_text())
        student = next(row for row in res["recovered"]["rows"] if row["role"] == "student")
        rows.append(_row(student["checkpoint"], f"pruned to {share:g} MACs + KD", args.target, args.power_mode))
        rows[-1]["oa"] = student["test_oa"]  # the run's own result (a resumed, finished run has no test in its manifest)
        rows[-1]["oa_before_recovery"] = res["test_oa_before_recovery"]
    split = find_split_file(teacher.path)
    data = build_config(DataConfig, {**(teacher.manifest.config.get("data") or {}), "split": str(split),
                                     "image_size": teacher.manifest.image_size}, section="data")
    for arch in args.scratch:
        out = args.out / f"scratch-{arch}"
        if not (out / "metrics.json").is_file():
            run_distill(JobConfig(data=data, train=TrainConfig(epochs=args.epochs, lr=args.scratch_lr, batch_size=64),
                                  student=arch, teacher=(str(teacher.path),), baseline=False, out=str(out)))
        rows.append(_row(str(out / "student" / "checkpoints" / "best"), f"{arch} from scratch + KD", args.target,
                         args.power_mode))
    _latencies(rows, args.threads, args.rounds, args.iters)
    cpu = cpu_info().describe()
    print(f"CPU: {cpu}; ORT CPU {args.threads} threads, batch 1; estimate: {args.target} FP16 (per-kernel model)")
    print(f"{'model':40s} {'OA %':>7s} {'params M':>9s} {'MACs M':>8s} {'CPU ms':>8s} {'est. ms':>8s}")
    for r in rows:
        print(f"{r['model']:40s} {100 * r['oa']:7.2f} {r['params'] / 1e6:9.3f} {r['macs'] / 1e6:8.2f} "
              f"{r['cpu_ms']:8.3f} {r['estimate_ms']:8.3f}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu, "args": {k: str(v) for k, v in vars(args).items()},
                                         "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
