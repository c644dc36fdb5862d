"""Training throughput (issue 14): the same KD work (ResNet-34 teacher → ResNet-18 student, Hinton KD, SGD,
batch 32, AID images) through ``compress``'s own loop, a plain PyTorch loop and torchdistill, interleaved
(A B C … per round), images/s medians and ratios, fp32 and each one's best setting.

    python bench/throughput.py --data ../shared/data/AID_150px --sizes 64 224 --steps 15 --rounds 3 \
        --torchdistill-python /work/tdvenv/bin/python --json bench/out/throughput.json

torchdistill runs in its own environment (``pip install --no-deps torchdistill`` in a venv that sees this
one's packages): ``--torchdistill-python``. Each measurement trains two short epochs of ``steps`` steps
and reports the second (warm) one.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def _data(root: str, size: int, steps: int, batch: int):
    import copy

    from compress.data.bundle import DataConfig, build_data

    data = build_data(DataConfig(data=root, train_ratio=0.2, image_size=size, workers=0), seed=0)
    train = copy.copy(data.train)
    train.indices = train.indices[: steps * batch]
    import dataclasses

    return dataclasses.replace(data, train=train, val=None)


def _models(classes: int, chans: int):
    import torch

    from compress.models import create_model

    torch.manual_seed(0)
    return create_model("resnet34", classes, chans).eval(), create_model("resnet18", classes, chans)


def run_compress(data, batch: int, best: bool) -> float:
    from compress.engine.train_config import TrainConfig
    from compress.engine.stage import StageSpec, run_stage

    teacher, _ = _models(len(data.class_names), data.in_chans)
    cfg = TrainConfig(epochs=2, batch_size=batch, lr=0.05, device="cpu", amp="auto" if best else "off",
                      memory_format="auto" if best else "contiguous")
    with tempfile.TemporaryDirectory() as tmp:
        res = run_stage(StageSpec(role="student", arch="resnet18", method="kd", train=cfg, run_dir=Path(tmp),
                                  config={}, workers=0), data, teacher=teacher)
        return float(res.fit.history[-1]["images_per_second"])


def run_plain(data, batch: int, best: bool) -> float:
    """A hand-written KD loop over the same data set (what a careful user would write)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, RandomSampler

    from compress.hardware import cpu_info

    teacher, student = _models(len(data.class_names), data.in_chans)
    cpu = cpu_info()
    bf16 = best and cpu.native_bf16
    fmt = torch.channels_last if best and cpu.amx else torch.contiguous_format
    teacher, student = teacher.to(memory_format=fmt), student.to(memory_format=fmt)
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    rate = 0.0
    for epoch in range(2):
        loader = DataLoader(data.train, batch_size=batch, sampler=RandomSampler(data.train), drop_last=True)
        student.train()
        t0, n = time.perf_counter(), 0
        for x, y in loader:
            x = x.contiguous(memory_format=fmt)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                with torch.no_grad():
                    t = teacher(x)
                s = student(x)
                loss = 0.1 * F.cross_entropy(s, y) + 0.9 * 16 * F.kl_div(
                    F.log_softmax(s / 4, 1), F.log_softmax(t / 4, 1), reduction="batchmean", log_target=True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        rate = n / (time.perf_counter() - t0)
    return rate


TORCHDISTILL = r'''
import json, sys, time, torch
sys.path.insert(0, sys.argv[1])
from bench.throughput import _data, _models
from torchdistill.core.distillation import DistillationBox
root, size, steps, batch = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
data = _data(root, size, steps, batch)
teacher, student = _models(len(data.class_names), data.in_chans)
cfg = {"num_epochs": 2, "train_data_loader": {"dataset_id": "train", "sampler": {"class_or_func": torch.utils.data.RandomSampler,
       "kwargs": {}}, "kwargs": {"batch_size": batch, "num_workers": 0, "drop_last": True}},
       "teacher": {"forward_proc": "forward_batch_only", "requires_grad": False},
       "student": {"forward_proc": "forward_batch_only", "requires_grad": True},
       "optimizer": {"key": "SGD", "kwargs": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}},
       "criterion": {"key": "WeightedSumLoss", "kwargs": {"sub_terms": {"kd": {"criterion": {"key": "KDLoss",
       "kwargs": {"student_module_path": ".", "student_module_io": "output", "teacher_module_path": ".",
       "teacher_module_io": "output", "temperature": 4.0, "alpha": 0.9, "reduction": "batchmean"}}, "weight": 1.0}}}}}
box = DistillationBox(teacher, student, {"train": data.train}, cfg, torch.device("cpu"), None, False, 1)
rate = 0.0
for epoch in range(2):
    box.pre_epoch_process(epoch=epoch)
    t0, n = time.perf_counter(), 0
    for sample_batch, targets, supp_dict in box.train_data_loader:
        loss = box.forward_process(sample_batch, targets, supp_dict)
        box.post_forward_process(loss=loss)
        n += len(targets)
    rate = n / (time.perf_counter() - t0)
print(json.dumps({"images_per_second": rate}))
'''


def run_torchdistill(python: str, root: str, size: int, steps: int, batch: int) -> float:
    repo = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([python, "-c", TORCHDISTILL, repo, root, str(size), str(steps), str(batch)],
                         capture_output=True, text=True, check=True, env={"PYTHONPATH": repo, "PATH": "/usr/bin:/bin"})
    return float(json.loads(out.stdout.strip().splitlines()[-1])["images_per_second"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--torchdistill-python", default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    from compress.hardware import cpu_info

    torch.set_num_threads(2)
    cpu = cpu_info().describe()
    results: dict[str, dict[str, list[float]]] = {}
    for size in args.sizes:
        data = _data(args.data, size, args.steps, args.batch_size)
        runs = {"compress fp32": lambda: run_compress(data, args.batch_size, False),
                "compress best (amp auto, channels_last auto)": lambda: run_compress(data, args.batch_size, True),
                "plain loop fp32": lambda: run_plain(data, args.batch_size, False),
                "plain loop best (bf16 if native, NHWC with AMX)": lambda: run_plain(data, args.batch_size, True)}
        if args.torchdistill_python:
            runs["torchdistill 1.1.5 fp32"] = lambda: run_torchdistill(args.torchdistill_python, args.data, size,
                                                                       args.steps, args.batch_size)
        per = {k: [] for k in runs}
        for _ in range(args.rounds):  # interleaved
            for k, fn in runs.items():
                per[k].append(fn())
        results[str(size)] = per
        base = statistics.median(per["plain loop fp32"])
        print(f"\n{size} px, batch {args.batch_size}, {args.steps} steps/epoch, {args.rounds} interleaved rounds; CPU {cpu}")
        print(f"{'run':48s} {'img/s (median)':>15s} {'× plain fp32':>13s}")
        for k, v in per.items():
            med = statistics.median(v)
            print(f"{k:48s} {med:15.1f} {med / base:13.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cpu": cpu, "args": {k: str(v) for k, v in vars(args).items()},
                                         "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
