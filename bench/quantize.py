"""INT8 benchmark (issue 12): OA on the test split and ONNX Runtime CPU latency (batch 1, median of
interleaved rounds, ratio to FP32 in the same run) of FP32, FP16, INT8 CPU-flavour PTQ, PTQ with the
sensitivity fallback, QAD, and the TensorRT flavour's OA in ONNX Runtime.

    python bench/quantize.py CKPT [CKPT ...] --out bench/out/quantize --json bench/out/quantize.json
    python bench/quantize.py --zoo resnet18 --size 224 --out bench/out/quantize-r18   # latency only
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def _latencies(files: dict[str, Path], size: int, chans: int, threads: int, rounds: int, iters: int) -> dict[str, float]:
    import numpy as np

    from runtime.onnxrt import OnnxrtRunner

    runners = {k: OnnxrtRunner(p, providers="cpu", threads=threads).activate() for k, p in files.items()}
    feeds = {}
    for k, r in runners.items():
        spec = r.input_specs()[0]
        shape = (1, size, size, chans) if spec.dtype == "uint8" else (1, chans, size, size)
        feeds[k] = np.random.default_rng(0).standard_normal(shape).astype(spec.dtype)
    medians: dict[str, list[float]] = {k: [] for k in runners}
    keys = list(runners)
    for i in range(rounds):  # interleaved: every model once per round, the order rotated each round
        for k in keys[i % len(keys):] + keys[:i % len(keys)]:
            r = runners[k]
            for _ in range(5):
                r.infer({"input": feeds[k]}, check_inputs=False)
            t = []
            for _ in range(iters):
                t0 = time.perf_counter()
                r.infer({"input": feeds[k]}, check_inputs=False)
                t.append((time.perf_counter() - t0) * 1e3)
            medians[k].append(statistics.median(t))
    return {k: statistics.median(v) for k, v in medians.items()}


def bench_checkpoint(ckpt: str, out: Path, args) -> dict:
    from compress.jobs.qad import QAD_TRAIN, QuantizeConfig, run_quantize
    from compress.models.restore import load_checkpoint
    from export.evaluate import evaluate_onnx
    from export.chain import ExportConfig, export_checkpoint

    man = load_checkpoint(ckpt).manifest
    files: dict[str, Path] = {}
    plain = out / "ptq"
    if not (plain / "export.json").is_file():
        export_checkpoint(ckpt, plain, ExportConfig(fp16=True, int8=True, int8_flavour="both", int8_budget=None,
                                                    calib_images=args.calib_images, parity_samples=64))
    files.update(fp32=plain / "model.onnx", fp16=plain / "model_fp16.onnx", ptq=plain / "model_int8.onnx",
                 trt=plain / "model_int8_trt.onnx")
    fb = out / "fallback"
    if not (fb / "export.json").is_file():
        export_checkpoint(ckpt, fb, ExportConfig(int8=True, int8_budget=args.budget, calib_images=args.calib_images,
                                                 parity_samples=64))
    files["fallback"] = fb / "model_int8.onnx"
    fallback = json.loads((fb / "export.json").read_text())["result"]["int8"][0]["fallback"]
    qad = out / "qad"
    if not (qad / "result.json").is_file():
        import dataclasses

        run_quantize(QuantizeConfig(checkpoint=ckpt, out=str(qad), qat=True, calib_images=args.calib_images,
                                    train=dataclasses.replace(QAD_TRAIN, epochs=args.qad_epochs)))
    files["qad"] = qad / "export" / "model_int8.onnx"
    oa = {k: evaluate_onnx(p, out=out / "evaluations" / k).metrics["oa"] for k, p in files.items()}
    lat = _latencies({k: v for k, v in files.items() if k != "trt"}, man.image_size, man.in_chans, args.threads,
                     args.rounds, args.iters)
    return {"checkpoint": ckpt, "image_size": man.image_size, "oa": oa, "latency_ms": lat,
            "fallback_float_layers": (fallback or {}).get("chosen", {}).get("float_nodes") if fallback else None}


def bench_zoo(name: str, size: int, out: Path, args) -> dict:
    """Latency only: a zoo model (random weights) exported and quantised with random calibration images."""
    import numpy as np
    import torch

    from compress.models import create_model
    from export.int8 import cpu_flavour, pre_process, quantize_int8, trt_flavour
    from export.onnx import OnnxOptions, export_onnx

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    opts = OnnxOptions(image_size=size, in_chans=3)
    fp32 = out / "model.onnx"
    if not fp32.is_file():
        export_onnx(create_model(name, 1000, 3).eval(), fp32, opts, {})
    calib = np.random.default_rng(0).standard_normal((32, 3, size, size)).astype(np.float32)
    files = {"fp32": fp32}
    for fl in (cpu_flavour(), trt_flavour()):
        src = pre_process(fp32, out / "pre.onnx") if fl.pre_process else fp32
        dst = out / f"model_int8_{fl.name}.onnx"
        if not dst.is_file():
            quantize_int8(src, dst, calib, "minmax", fl)
        files[f"int8-{fl.name}"] = dst
    return {"model": name, "image_size": size, "latency_ms": _latencies(files, size, 3, args.threads, args.rounds,
                                                                         args.iters)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*")
    ap.add_argument("--zoo", default=None, help="latency only for a zoo model, e.g. resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", type=Path, default=Path("bench/out/quantize"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--budget", type=float, default=1.0)
    ap.add_argument("--calib-images", type=int, default=256)
    ap.add_argument("--qad-epochs", type=int, default=3)
    args = ap.parse_args(argv)

    from compress.hardware import cpu_info

    rows = [bench_zoo(args.zoo, args.size, args.out / args.zoo, args)] if args.zoo else []
    rows += [bench_checkpoint(c, args.out / Path(c).parent.name / Path(c).name, args) for c in args.checkpoints]
    cpu = cpu_info().describe()
    print(f"CPU: {cpu}; ONNX Runtime CPU, {args.threads} threads, batch 1, median of {args.rounds} interleaved rounds")
    for r in rows:
        base = r["latency_ms"]["fp32"]
        print(f"\n{r.get('checkpoint') or r['model']} @ {r['image_size']} px")
        print(f"{'variant':10s} {'OA %':>7s} {'ms':>8s} {'× FP32':>7s}")
        for k in ("fp32", "fp16", "ptq", "fallback", "qad", "trt", "int8-cpu", "int8-trt"):
            if k in r["latency_ms"] or k in r.get("oa", {}):
                oa = r.get("oa", {}).get(k)
                ms = r["latency_ms"].get(k)
                print(f"{k:10s} {'' if oa is None else f'{100 * oa:7.2f}'} "
                      f"{'' if ms is None else f'{ms:8.3f}'} {'' if ms is None else f'{base / ms:7.2f}'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cpu": cpu, "threads": args.threads, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
