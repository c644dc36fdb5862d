"""Profile evidence: one model through every runner here, and the per-kernel ESTIMATE per Jetson profile.

    python bench/profile_bench.py --model resnet18 --size 224 --iters 50 --threads 2 -o bench/profile_results.md
    python bench/profile_bench.py --quick            # small input, few iterations (smoke run)

Part A measures the same model with PyTorch eager and ONNX Runtime (CPU) FP32 / FP16 / INT8-QDQ on the
same input, same thread count, and prints ratios to PyTorch eager. The INT8 model is calibrated on
random inputs: fine for timing, meaningless for accuracy. Part B prints the estimator's FP16 batch-1
predictions for ResNet-18/50, EfficientNet-B0 and MobileNetV2 on every Jetson profile (default
power mode and MAXN), beside the published measurements in profiles/calibration/published.csv.
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path


import numpy as np  # noqa: E402
import torch  # noqa: E402

ESTIMATE_MODELS = {"resnet18": "resnet18", "resnet50": "resnet50", "efficientnet_b0": "efficientnet_b0",
                   "mobilenetv2_100": "mobilenet_v2"}  # zoo name -> torchvision name in published.csv


def measure_runners(name: str, size: int, batch: int, warmup: int, iters: int, threads: int) -> list[dict]:
    import onnx

    from compress.models import create_model
    from export.fp16 import convert_fp16
    from export.int8 import quantize_int8
    from runtime.latency import measure_latency
    from runtime.onnxrt import OnnxrtRunner
    from runtime.torch_runner import TorchRunner

    torch.set_num_threads(threads)
    model = create_model(name, num_classes=1000, in_chans=3).eval()
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        torch.onnx.export(model, (torch.from_numpy(x),), str(fp32), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "batch"}})
        fp16 = Path(tmp) / "fp16.onnx"
        onnx.save(convert_fp16(onnx.load(str(fp32))), str(fp16))
        int8 = Path(tmp) / "int8.onnx"
        calib = np.random.default_rng(1).standard_normal((16, 3, size, size)).astype(np.float32)
        quantize_int8(fp32, int8, calib, method="minmax")
        runners = [("pytorch eager fp32", TorchRunner(model, "cpu", input_shape=(-1, 3, size, size)), "input"),
                   ("onnxrt cpu fp32", OnnxrtRunner(fp32, ["cpu"], threads=threads), "input"),
                   ("onnxrt cpu fp16", OnnxrtRunner(fp16, ["cpu"], threads=threads), "input"),
                   ("onnxrt cpu int8 (QDQ)", OnnxrtRunner(int8, ["cpu"], threads=threads), "input")]
        for label, runner, inp in runners:
            s = measure_latency(runner, {inp: x}, warmup, iters, batch)
            rows.append({**s.__dict__, "runner_info": s.runner, "runner": label})
    return rows


def estimates(precision: str = "fp16") -> list[dict]:
    from profiles.calibration.fit import load_published
    from profiles.device import list_device_profiles
    from profiles.estimator.estimate import estimate_latency
    from profiles.counting.torch_count import analyze_torch

    from compress.models import create_model

    published = {(p.device, p.model): p for p in load_published() if p.batch == 1 and p.precision == precision}
    rows = []
    for zoo, tv in ESTIMATE_MODELS.items():
        with torch.device("meta"):
            model = create_model(zoo, num_classes=1000, in_chans=3)
        a = analyze_torch(model, (1, 3, 224, 224))
        for dev in list_device_profiles():
            if dev.kind != "jetson":
                continue
            modes = {dev.default_power_mode, dev.power_modes[0].name}
            for mode in sorted(modes):
                est = estimate_latency(a, dev, precision, mode)
                pub = published.get((dev.name, tv)) if mode == dev.power_modes[0].name else None
                rows.append({"model": zoo, "device": dev.name, "mode": mode, "estimate_ms": est.latency_ms,
                             "published_ms": pub.latency_ms if pub else None, "split": pub.timing if pub else None,
                             "gmacs": a.macs / 1e9})
    return rows


def render(a_rows: list[dict], b_rows: list[dict], args: argparse.Namespace) -> str:
    lines = [f"## Profile bench (`python bench/profile_bench.py {' '.join(sys.argv[1:])}`)", "",
             f"Host: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {args.threads}.", ""]
    if a_rows:
        base = a_rows[0]["mean_ms"]
        lines += [f"### A. Measured here: {args.model}, batch {args.batch}, {args.size} px, warm-up {args.warmup}, "
                  f"{args.iters} timed runs (host↔device copies included; CPU only)", "",
                  "| runner | mean ms | p50 ms | p90 ms | p99 ms | images/s | speed-up vs eager |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in a_rows:
            lines.append(f"| {r['runner']} | {r['mean_ms']:.3f} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} "
                         f"| {r['throughput_ips']:.1f} | {base / r['mean_ms']:.2f}x |")
    if b_rows:
        lines += ["", "### B. ESTIMATES (per-kernel model, FP16, batch 1, 224 px) per Jetson profile, beside published "
                  "measurements (in brackets: what the publication timed; all of them are in the calibration, see "
                  "profiles/calibration/fit_report.md for cross-validated errors)", "",
                  "| model | GMACs | device | power mode | ESTIMATE ms | published ms | estimate / published |",
                  "| --- | ---: | --- | --- | ---: | ---: | ---: |"]
        for r in b_rows:
            pub = f"{r['published_ms']:g} ({r['split']})" if r["published_ms"] else "–"
            ratio = f"{r['estimate_ms'] / r['published_ms']:.2f}" if r["published_ms"] else "–"
            lines.append(f"| {r['model']} | {r['gmacs']:.3f} | {r['device']} | {r['mode']} | {r['estimate_ms']:.2f} | {pub} | {ratio} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="64 px, 3 warm-up, 10 runs")
    ap.add_argument("--skip-measure", action="store_true")
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args()
    if args.quick:
        args.size, args.warmup, args.iters = 64, 3, 10
    a_rows = [] if args.skip_measure else measure_runners(args.model, args.size, args.batch, args.warmup, args.iters,
                                                          args.threads)
    text = render(a_rows, estimates(), args)
    if args.output:
        from compress.io import write_text_atomic

        write_text_atomic(args.output, text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
