"""ONNX Runtime CPU latency of FP32 / FP16 / INT8 exports against PyTorch eager, on the same inputs.

    python bench/export_bench.py runs/<name>/checkpoints/best --repeats 50 --batch 1 --threads 4

Exports the checkpoint (FP32 + FP16 + INT8 QDQ, parity checked) into a temporary folder, then
times every runner on the same batch of real test images (median of ``--repeats`` calls after
warm-up, same thread count for all) and reports accuracy over the whole test sample.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--samples", type=int, default=512, help="test images for accuracy")
    ap.add_argument("--calib-images", type=int, default=256)
    ap.add_argument("--calib-method", default="entropy")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from rich.console import Console
    from rich.table import Table

    from compress.models.restore import load_checkpoint
    from export.onnx import export_module
    from export.chain import ExportConfig, default_samples_loader, export_checkpoint
    from export.verify import median_latency_ms, run_batched
    from runtime.onnxrt import OnnxrtRunner
    from runtime.torch_runner import TorchRunner

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "export"
        cfg = ExportConfig(batch=args.batch, dynamic_batch=True, fp16=True, int8=True, calib_images=args.calib_images,
                           calib_method=args.calib_method, parity_samples=args.samples, repeats=3)
        result = export_checkpoint(args.checkpoint, out, cfg)
        ckpt = load_checkpoint(args.checkpoint)
        samples = default_samples_loader(ckpt.path, ckpt.manifest, "test", args.samples)
        x = samples.images.numpy().astype(np.float32)
        labels = samples.labels.numpy()
        feed = x[:args.batch]
        runners = [("pytorch-eager", "fp32", TorchRunner(export_module(ckpt.model, "classify", False,
                                                                        ckpt.manifest.mean, ckpt.manifest.std)))]
        for prec, name in (("fp32", "model.onnx"), ("fp16", "model_fp16.onnx"), ("int8", "model_int8.onnx")):
            runners.append(("onnxrt-cpu", prec, OnnxrtRunner(out / name, providers="cpu", threads=args.threads)))
        rows = []
        for name, prec, runner in runners:
            with runner:
                ms = median_latency_ms(runner, feed, repeats=args.repeats, warmup=5)
                pred = run_batched(runner, x, 64, True).argmax(1)
            rows.append({"runner": name, "precision": prec, "median_ms": ms,
                         "accuracy": float((pred == labels).mean() * 100)})
    base = rows[0]["median_ms"]
    table = Table(title=f"CPU latency, batch {args.batch}, {args.threads} threads, median of {args.repeats} "
                        f"({platform.processor() or platform.machine()}); accuracy on {len(x)} images "
                        f"({samples.source})")
    for col in ("runner", "precision", "median ms", "× vs eager", "OA %"):
        table.add_column(col, justify="left" if col == "runner" else "right")
    for r in rows:
        r["speedup_vs_eager"] = base / r["median_ms"]
        table.add_row(r["runner"], r["precision"], f"{r['median_ms']:.3f}", f"{r['speedup_vs_eager']:.2f}",
                      f"{r['accuracy']:.2f}")
    Console().print(table)
    Console().print(f"parity passed: {result.passed}")
    if args.json:
        args.json.write_text(json.dumps({"argv": sys.argv, "rows": rows, "parity_passed": result.passed}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
