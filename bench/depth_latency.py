"""Which pruning moves latency on a Jetson? Estimated batch-1 latency of a zoo model pruned in width (channels,
to shares of its MACs) and in depth (whole residual blocks), per device and precision.

    python bench/depth_latency.py --model efficientnet-lite0 --size 96 \
        --targets jetson-orin-nano-8gb@15W jetson-agx-orin-64gb@MAXN --precisions fp16 int8

Latencies are ESTIMATES of TensorRT GPU time from the per-kernel model calibrated on published Jetson
measurements (``profiles/calibration/fit_report.md``; its ranking section gives Kendall's τ per device).
Blocks are dropped in the order depth pruning uses (least ‖f(x)‖/‖x‖ first), here measured on random
images with the model's random initialisation: the latency of k dropped blocks hardly depends on which.
"""
from __future__ import annotations

import argparse
import copy


def main() -> None:
    import torch

    from compress.jobs.prune_budget import PruneJobConfig, prune_to_budget
    from compress.jobs.candidates import target_spec
    from compress.models import create_model
    from compress.models.depth import block_contribution, drop_blocks, removable_blocks
    from profiles.device import load_device_profile
    from profiles.estimator.estimate import estimate_latency
    from profiles.counting.torch_count import analyze_torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--targets", nargs="+", default=["jetson-orin-nano-8gb@15W", "jetson-agx-orin-64gb@MAXN"])
    ap.add_argument("--precisions", nargs="+", default=["fp16", "int8"])
    ap.add_argument("--widths", type=float, nargs="+", default=[0.75, 0.5, 0.35])
    args = ap.parse_args()
    shape = (1, 3, args.size, args.size)
    torch.manual_seed(0)
    base = create_model(args.model, args.classes, 3).eval()
    blocks = removable_blocks(base)
    score = block_contribution(base, blocks, [torch.randn(8, *shape[1:])])
    order = sorted(blocks, key=score.get)
    candidates = [("unpruned", base)]
    for share in args.widths:
        m = copy.deepcopy(base)
        prune_to_budget(m, shape, PruneJobConfig(checkpoint="-", macs=share), args.model)
        candidates.append((f"width, MACs ≤ {share:g}", m))
    for k in sorted({len(blocks) // 3, 2 * len(blocks) // 3, len(blocks)} - {0}):
        candidates.append((f"depth, {k} of {len(blocks)} blocks", drop_blocks(copy.deepcopy(base), order[:k])))
    devices = [(t, *target_spec(t)) for t in args.targets]
    cols = [(t, p) for t, _, _ in devices for p in args.precisions]
    print(f"{args.model} at {args.size} px, batch 1; estimated ms (speed-up over the unpruned model)")
    print("| candidate | MACs (M) | params (M) | " + " | ".join(f"{t} {p}" for t, p in cols) + " |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in cols) + " |")
    first: dict = {}
    for label, model in candidates:
        a = analyze_torch(copy.deepcopy(model).to("meta"), shape)
        cells = []
        for (t, name, mode), p in ((d, p) for d in devices for p in args.precisions):
            ms = estimate_latency(a, load_device_profile(name), p, mode).latency_ms
            first.setdefault((t, p), ms)
            cells.append(f"{ms:.3f} ({first[(t, p)] / ms:.2f}×)")
        print(f"| {label} | {a.macs / 1e6:.1f} | {a.params / 1e6:.3f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
