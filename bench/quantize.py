"""INT8 methods compared (issues 12, 33): per method — plain PTQ, CLE, bias correction, AdaRound (each alone,
no layer in float), the float fallback alone, the export's default (auto: the fixes, then the fallback) and
QAD — the test-split OA of both flavours (the TensorRT flavour scored in ONNX Runtime), the float layers kept,
the export's wall time (every export also writes and checks the FP32 file: compare with ptq's), and the CPU
flavour's ONNX Runtime latency (batch 1, median of interleaved rounds, ratio to FP32 in the same run).

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
    """Median over ``rounds`` interleaved rounds of each file's p50 latency (ms). Every file gets a fresh session
    each round, used alone: with all sessions alive side by side, two byte-identical files measured 0.448 and
    0.362 ms (their idle thread pools compete for the 2 cores); one at a time, 0.321 and 0.323 ms."""
    import numpy as np

    from runtime.latency import measure_latency
    from runtime.onnxrt import OnnxrtRunner

    medians: dict[str, list[float]] = {k: [] for k in files}
    keys = list(files)
    for i in range(rounds):  # the order rotated each round
        for k in keys[i % len(keys):] + keys[:i % len(keys)]:
            with OnnxrtRunner(files[k], providers="cpu", threads=threads) as r:
                spec = r.input_specs()[0]
                shape = (1, size, size, chans) if spec.dtype == "uint8" else (1, chans, size, size)
                x = np.random.default_rng(0).standard_normal(shape).astype(spec.dtype)
                medians[k].append(measure_latency(r, {spec.name: x}, 5, iters).p50_ms)
    return {k: statistics.median(v) for k, v in medians.items()}


# method → ExportConfig fields: each fix on its own with no float layer (no budget), the float fallback alone,
# and the export's default (every fix auto, then the fallback: what a user gets)
OFF = dict(int8_cle="off", int8_adaround="off", int8_bias_correction="off")
METHODS = {"ptq": dict(OFF, int8_budget=None), "cle": dict(OFF, int8_cle="on", int8_budget=None),
           "bias-correction": dict(OFF, int8_bias_correction="on", int8_budget=None),
           "adaround": dict(OFF, int8_adaround="on", int8_budget=None), "fallback": dict(OFF),
           "auto": {}}


def _export_method(ckpt: str, out: Path, method: str, args) -> dict:
    """One export (both flavours) with ``method``; its wall time in seconds and what each INT8 file carries."""
    from export.chain import ExportConfig, export_checkpoint

    record = out / "method.json"
    if not record.is_file():
        t0 = time.perf_counter()
        export_checkpoint(ckpt, out, ExportConfig(int8=True, int8_flavour="both", force=True,
                                                  calib_images=args.calib_images, parity_samples=64,
                                                  **METHODS[method]))
        seconds = time.perf_counter() - t0
        meta = json.loads((out / "export.json").read_text())["result"]["int8"]
        floats = {v["flavour"]: len(((v.get("fallback") or {}).get("chosen") or {}).get("float_nodes", []))
                  for v in meta}
        applied = {v["flavour"]: list(v.get("fixes") or {}) for v in meta}  # in the order applied
        record.write_text(json.dumps({"seconds": seconds, "float_layers": floats, "applied": applied}))
    rec = json.loads(record.read_text())
    return dict(rec, files={"cpu": out / "model_int8.onnx", "trt": out / "model_int8_trt.onnx"})


def _qad(ckpt: str, out: Path, args) -> dict:
    """Quantisation-aware distillation of each flavour (``compress quantize --qat``)."""
    import dataclasses

    from compress.jobs.qad import QAD_TRAIN, QuantizeConfig, run_quantize

    files, seconds = {}, 0.0
    for flavour in ("cpu", "trt"):
        run = out / flavour
        if not (run / "result.json").is_file():
            t0 = time.perf_counter()
            run_quantize(QuantizeConfig(checkpoint=ckpt, out=str(run), qat=True, flavour=flavour,
                                        calib_images=args.calib_images,
                                        train=dataclasses.replace(QAD_TRAIN, epochs=args.qad_epochs)))
            (run / "seconds.txt").write_text(f"{time.perf_counter() - t0:.1f}")
        seconds += float((run / "seconds.txt").read_text())
        files[flavour] = run / "export" / "model_int8.onnx"
    return {"seconds": seconds, "float_layers": {"cpu": 0, "trt": 0}, "applied": {}, "files": files}


class TestSplit:
    """The run's test split decoded once (``[N, C, H, W]`` as the FP32 file takes it): each INT8 file is then
    scored by ``export.evaluate.predict_classes``, as ``evaluate_onnx`` scores it, without decoding 8,000
    images per file."""

    def __init__(self, fp32: Path) -> None:
        import numpy as np

        from compress.data.sources import checkpoint_dataset
        from export.evaluate import batch_input, onnx_manifest

        self.man = onnx_manifest(fp32)
        ckpt = json.loads((fp32.parent / "export.json").read_text())["checkpoint"]
        ds = checkpoint_dataset(ckpt, self.man, part="test").dataset
        self.x = np.concatenate([batch_input(ds, np.arange(i, min(i + 256, len(ds))), self.man)
                                 for i in range(0, len(ds), 256)])
        self.y = np.asarray(ds.labels)

    def oa(self, path: Path) -> float:
        """Overall accuracy of ``path`` on the split, percent."""
        from export.evaluate import predict_classes

        batches = (self.x[i:i + 64] for i in range(0, len(self.x), 64))
        return float((predict_classes(path, batches, self.man) == self.y).mean() * 100)


def bench_checkpoint(ckpt: str, out: Path, args) -> dict:
    """Per INT8 method: test-split OA of both flavours, the export's time, the CPU flavour's latency."""
    from compress.models.restore import load_checkpoint

    man = load_checkpoint(ckpt).manifest
    rows = {m: _export_method(ckpt, out / m, m, args) for m in args.methods if m in METHODS}
    if "qad" in args.methods:
        rows["qad"] = _qad(ckpt, out / "qad", args)
    fp32 = out / next(iter(rows)) / "model.onnx"
    test = TestSplit(fp32)
    fp32_oa = test.oa(fp32)
    for r in rows.values():
        r["oa"] = {fl: test.oa(p) for fl, p in r["files"].items()}
    lat = _latencies({"fp32": fp32, **{m: r["files"]["cpu"] for m, r in rows.items()}}, man.image_size,
                     man.in_chans, args.threads, args.rounds, args.iters)
    methods = {m: {"seconds": r["seconds"], "float_layers": r["float_layers"], "applied": r["applied"],
                   "oa": r["oa"], "latency_ms": lat[m]} for m, r in rows.items()}
    return {"checkpoint": ckpt, "image_size": man.image_size, "test_images": len(test.y), "fp32_oa": fp32_oa,
            "fp32_latency_ms": lat["fp32"], "methods": methods}


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


def _print(rows: list[dict]) -> None:
    for r in rows:
        print(f"\n{r.get('checkpoint') or r['model']} @ {r['image_size']} px")
        if "methods" not in r:  # zoo: latency only
            base = r["latency_ms"]["fp32"]
            for k, ms in r["latency_ms"].items():
                print(f"{k:10s} {ms:8.3f} ms {base / ms:6.2f}× FP32")
            continue
        print(f"FP32: {r['fp32_oa']:.2f} % test OA, {r['fp32_latency_ms']:.3f} ms")
        print(f"{'method':16s} {'CPU OA %':>8s} {'drop':>6s} {'TRT OA %':>8s} {'drop':>6s} {'float':>7s} "
              f"{'export s':>8s} {'CPU ms':>7s} {'× FP32':>6s}  fixes kept (cpu | trt)")
        for m, v in r["methods"].items():
            oa, fl = v["oa"], v["float_layers"]
            print(f"{m:16s} {oa['cpu']:8.2f} {r['fp32_oa'] - oa['cpu']:6.2f} {oa['trt']:8.2f} "
                  f"{r['fp32_oa'] - oa['trt']:6.2f} {fl['cpu']:>3d}|{fl['trt']:<3d} {v['seconds']:8.0f} "
                  f"{v['latency_ms']:7.3f} {r['fp32_latency_ms'] / v['latency_ms']:6.2f}  "
                  f"{','.join(v['applied'].get('cpu', [])) or '-'} | {','.join(v['applied'].get('trt', [])) or '-'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*")
    ap.add_argument("--zoo", default=None, help="latency only for a zoo model, e.g. resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", type=Path, default=Path("bench/out/quantize"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--methods", nargs="+", default=[*METHODS, "qad"], choices=[*METHODS, "qad"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--calib-images", type=int, default=256)
    ap.add_argument("--qad-epochs", type=int, default=3)
    args = ap.parse_args(argv)

    from compress.hardware import cpu_info

    rows = [bench_zoo(args.zoo, args.size, args.out / args.zoo, args)] if args.zoo else []
    for i, c in enumerate(args.checkpoints):
        name = next((q for q in reversed(Path(c).parts) if q not in ("best", "last", "checkpoints", "student")), "run")
        rows.append(bench_checkpoint(c, args.out / f"{i}-{name}", args))
        if args.json:  # after each checkpoint: a long run keeps what it measured
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"cpu": cpu_info().describe(), "threads": args.threads, "rows": rows},
                                            indent=2, default=str))
    print(f"CPU: {cpu_info().describe()}; ONNX Runtime CPU, {args.threads} threads, batch 1, median of "
          f"{args.rounds} interleaved rounds; OA on the whole test split, drops in points against FP32")
    _print(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
