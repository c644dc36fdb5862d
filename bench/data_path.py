"""The two data paths on this CPU (issue 29, item 2): batches per second of ``--data-path loader`` (a
``DataLoader``, each image augmented on its own) and ``--data-path cache`` (pixels held once, batches
assembled in one go), interleaved (A B A B …), medians and ratios. Two regimes:

* ``in memory``: the images fit the in-memory limit (the default, 4 GB): both paths read decoded pixels;
* ``over the limit``: the scan keeps no pixels (``cache=False``, what a data set over the limit gets): the
  loader decodes every JPEG every epoch, the cache path reads its memory-mapped file.

And one training epoch of a small student (``--model``) on each path, to show the share of a step.

    python bench/data_path.py --data gpu_data/aid96 --size 96 --batch-size 64 --rounds 5
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _bundle(root: str, size: int, in_memory: bool):
    from compress.data.bundle import DataConfig, build_data

    return build_data(DataConfig(data=root, train_ratio=0.5, image_size=size, cache=in_memory), seed=0)


def batches_per_second(data, path: str, batch: int, steps: int, epoch: int) -> float:
    """Make ``steps`` training batches on the CPU and return images/s (the pixel file already built)."""
    import torch

    from compress.engine.train_config import TrainConfig
    from compress.engine.epoch import build_loader
    from compress.methods import build_method
    from compress.models import create_model

    method = build_method("ce", create_model("cifar_resnet8", len(data.class_names), data.in_chans), None, None,
                          num_classes=len(data.class_names), image_size=data.image_size, in_chans=data.in_chans)
    loader = build_loader(method, data, TrainConfig(batch_size=batch, data_path=path), 0, torch.device("cpu"))
    loader.batch_sampler.set_epoch(epoch)
    t0, n = time.perf_counter(), 0
    for i, (x, _) in enumerate(loader):
        n += len(x)
        if i + 1 == steps:
            break
    return n / (time.perf_counter() - t0)


def epoch_per_second(data, path: str, batch: int, model: str) -> float:
    from compress.engine.train_config import TrainConfig
    from compress.engine.stage import StageSpec, run_stage

    cfg = TrainConfig(epochs=1, batch_size=batch, lr=0.05, device="cpu", data_path=path)
    with tempfile.TemporaryDirectory() as tmp:
        res = run_stage(StageSpec(role="model", arch=model, method="ce", train=cfg, run_dir=Path(tmp), config={},
                                  workers=0), data)
    return float(res.fit.history[-1]["images_per_second"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--model", default="mobilenetv3_small_100")
    args = ap.parse_args(argv)

    import copy

    import torch

    from compress.hardware import cpu_info

    torch.set_num_threads(2)
    print(f"CPU {cpu_info().describe()}; {args.data}, {args.size} px, batch {args.batch_size}, "
          f"{args.rounds} interleaved rounds")
    print(f"{'regime':16s} {'what':28s} {'loader img/s':>13s} {'cache img/s':>12s} {'cache/loader':>13s}")
    for regime, in_memory in (("in memory", True), ("over the limit", False)):
        data = _bundle(args.data, args.size, in_memory)
        batches_per_second(data, "cache", args.batch_size, 1, 0)  # builds the memory-mapped file once
        per = {"loader": [], "cache": []}
        for r in range(args.rounds):
            for path in per:
                per[path].append(batches_per_second(data, path, args.batch_size, args.steps, r))
        a, b = statistics.median(per["loader"]), statistics.median(per["cache"])
        print(f"{regime:16s} {'batches only':28s} {a:13.0f} {b:12.0f} {b / a:13.2f}")
        small = copy.copy(data)
        train = copy.copy(data.train)
        train.indices = train.indices[: args.batch_size * args.steps]
        small.train, small.val = train, None
        small.test = copy.copy(data.test)
        small.test.indices = small.test.indices[: args.batch_size]
        per = {"loader": [], "cache": []}
        for _ in range(max(1, args.rounds // 2)):
            for path in per:
                per[path].append(epoch_per_second(small, path, args.batch_size, args.model))
        a, b = statistics.median(per["loader"]), statistics.median(per["cache"])
        print(f"{regime:16s} {'epoch of ' + args.model:28s} {a:13.0f} {b:12.0f} {b / a:13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
