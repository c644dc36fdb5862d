"""Jetson latency ESTIMATES per profile, power mode and precision, as a markdown table (issue 15).

    python bench/estimates.py            # ResNet-18/50, EfficientNet-B0, MobileNetV2, DeiT-Tiny at 224 px, 1000 classes

Each cell is `profiles.estimator.estimate.estimate_latency` on `profiles.counting.torch_count.analyze_torch` of the zoo model
(the path `compress profile MODEL --target DEV --power-mode MODE --precision P` takes), with the 80 % band
from the leave-one-device-out fit in brackets. Nothing here is measured.
"""
from __future__ import annotations

import argparse


ROWS = (("jetson-agx-orin-64gb", "MAXN", ("fp16", "int8")), ("jetson-agx-xavier", "MAXN", ("fp16", "int8")),
        ("jetson-nano", "MAXN", ("fp16",)), ("jetson-orin-nano-8gb", "15W", ("fp16", "int8")),
        ("jetson-orin-nano-8gb", "MAXN_SUPER", ("fp16", "int8")), ("jetson-orin-nx-16gb", "MAXN", ("fp16", "int8")),
        ("jetson-xavier-nx", "MODE_15W_6CORE", ("fp16", "int8")), ("jetson-tx2", "Max-N", ("fp16",)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet18", "resnet50", "efficientnet_b0", "mobilenetv2_100", "deit_tiny_patch16_224"])
    ap.add_argument("--size", type=int, default=224)
    a = ap.parse_args(argv)

    from compress.models.factory import create_model
    from profiles.device import load_device_profile
    from profiles.estimator.estimate import estimate_latency
    from profiles.counting.torch_count import analyze_torch

    shape = (1, 3, a.size, a.size)
    an = {m: analyze_torch(create_model(m, num_classes=1000).to("meta"), shape) for m in a.models}
    print("| device, power mode | precision | " + " | ".join(a.models) + " |")
    print("|---|---|" + "---:|" * len(a.models))
    for dev, mode, precisions in ROWS:
        prof = load_device_profile(dev)
        for p in precisions:
            cells = [estimate_latency(an[m], prof, p, mode) for m in a.models]
            print(f"| {dev} {mode} | {p} | "
                  + " | ".join(f"{e.latency_ms:.2f} ({e.low_ms:.2f}–{e.high_ms:.2f})" for e in cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
