"""The throughput section of ``bench/gpu_check.py``: the same KD work (ResNet-34 teacher → ResNet-18 student,
224 px, batch 128, images of the reduced AID copy) through ``compress``'s engine, a hand-tuned plain loop
and torchdistill 1.1.5, interleaved (A B C … per round), images/s of each one's second (warm) epoch.

* compress: the engine as ``compress distill`` runs it (amp auto = bf16, channels_last auto, fused SGD,
  cudnn.benchmark, the pixel cache on the GPU);
* plain loop: what a careful user writes (bf16 autocast, channels_last, fused SGD, cudnn.benchmark) over the
  same cached data path (:class:`compress.data.batches.BatchAssembler`), no host reads in the loop;
* torchdistill: ``DistillationBox`` with a ``DataLoader`` of the same data set (per-image augmentation in
  worker processes, pinned memory), fp32 as configured by default, and with bf16 autocast and channels_last
  added around its calls (its own accelerate hook fails with accelerate 1.x).
"""
from __future__ import annotations

import copy
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

from gpu_sections import Context, gpu_clocks


def _data(ctx: Context, size: int, steps: int, batch: int):
    from compress.data.bundle import DataConfig, build_data

    root = None if ctx.smoke else str(ctx.args.data)
    data = build_data(DataConfig(data=root, train_ratio=0.5, image_size=size), seed=0)
    train, test = copy.copy(data.train), copy.copy(data.test)
    train.indices = train.indices[: steps * batch]
    test.indices = test.indices[:batch]
    return dataclasses.replace(data, train=train, test=test, val=None)


def _models(ctx: Context, data):
    import torch

    from compress.models import create_model

    t, s = ("cifar_resnet8", "cifar_resnet8") if ctx.smoke else ("resnet34", "resnet18")
    torch.manual_seed(0)
    return create_model(t, len(data.class_names), data.in_chans).eval(), create_model(s, len(data.class_names),
                                                                                      data.in_chans)


def _sync(ctx: Context) -> None:
    import torch

    if ctx.cuda:
        torch.cuda.synchronize()


def run_compress(ctx: Context, data, batch: int) -> float:
    from compress.engine.train_config import TrainConfig
    from compress.engine.stage import StageSpec, run_stage

    teacher, _ = _models(ctx, data)
    cfg = TrainConfig(epochs=2, batch_size=batch, lr=0.05, device=ctx.device, log_every=10**6)
    arch = "cifar_resnet8" if ctx.smoke else "resnet18"
    with tempfile.TemporaryDirectory() as tmp:
        res = run_stage(StageSpec(role="student", arch=arch, method="kd", train=cfg, run_dir=Path(tmp), config={}),
                        data, teacher=teacher)
    return float(res.fit.history[-1]["images_per_second"])


def run_plain(ctx: Context, data, batch: int) -> float:
    import torch
    import torch.nn.functional as F

    from compress.data.batches import BatchAssembler
    from compress.data.cache import subset_cache

    dev = torch.device(ctx.device)
    teacher, student = _models(ctx, data)
    fmt = torch.channels_last
    teacher, student = teacher.to(dev, memory_format=fmt), student.to(dev, memory_format=fmt)
    torch.backends.cudnn.benchmark = True
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4,
                          fused=ctx.cuda)
    asm = BatchAssembler(data.train, subset_cache(data.train.source, data.train.indices).to(dev))
    amp = torch.bfloat16 if ctx.cuda else None
    n_img = len(data.train)
    rate = 0.0
    for epoch in range(2):
        order = torch.randperm(n_img).tolist()
        _sync(ctx)
        t0, n = time.perf_counter(), 0
        for i in range(0, n_img - batch + 1, batch):
            x, y = asm([(j, epoch) for j in order[i:i + batch]])
            x = x.contiguous(memory_format=fmt)
            with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
                with torch.no_grad():
                    t = teacher(x)
                s = student(x)
                loss = 0.5 * F.cross_entropy(s, y) + 0.5 * 16 * F.kl_div(
                    F.log_softmax(s.float() / 4, 1), F.log_softmax(t.float() / 4, 1), reduction="batchmean",
                    log_target=True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        _sync(ctx)
        rate = n / (time.perf_counter() - t0)
    return rate


def run_torchdistill(ctx: Context, data, batch: int, bf16: bool) -> float:
    import torch
    from torchdistill.core.distillation import DistillationBox

    teacher, student = _models(ctx, data)
    dev = torch.device(ctx.device)
    workers = 0 if ctx.smoke else min(8, max(1, (os.cpu_count() or 2) - 2))
    cfg = {"num_epochs": 2, "train_data_loader": {
        "dataset_id": "train", "sampler": {"class_or_func": torch.utils.data.RandomSampler, "kwargs": {}},
        "kwargs": {"batch_size": batch, "num_workers": workers, "drop_last": True, "pin_memory": ctx.cuda,
                   **({"persistent_workers": True} if workers else {})}},
        "teacher": {"forward_proc": "forward_batch_only", "requires_grad": False},
        "student": {"forward_proc": "forward_batch_only", "requires_grad": True},
        "optimizer": {"key": "SGD", "kwargs": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}},
        "criterion": {"key": "WeightedSumLoss", "kwargs": {"sub_terms": {"kd": {"criterion": {"key": "KDLoss", "kwargs": {
            "student_module_path": ".", "student_module_io": "output", "teacher_module_path": ".",
            "teacher_module_io": "output", "temperature": 4.0, "alpha": 0.5, "reduction": "batchmean"}},
            "weight": 1.0}}}}}
    # bf16 through torchdistill's accelerate hook fails with accelerate 1.x (it reads the removed
    # AcceleratorState.use_fp16), so its best setting here is what a user adds around its calls
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    box = DistillationBox(teacher.to(dev, memory_format=fmt), student.to(dev, memory_format=fmt), {"train": data.train},
                          cfg, dev, None, False, 1)
    rate = 0.0
    for epoch in range(2):
        box.pre_epoch_process(epoch=epoch)
        _sync(ctx)
        t0, n = time.perf_counter(), 0
        for sample_batch, targets, supp_dict in box.train_data_loader:
            sample_batch, targets = sample_batch.to(dev, non_blocking=True), targets.to(dev, non_blocking=True)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                loss = box.forward_process(sample_batch.contiguous(memory_format=fmt), targets, supp_dict)
            box.post_forward_process(loss=loss)
            n += len(targets)
        _sync(ctx)
        rate = n / (time.perf_counter() - t0)
    return rate


def throughput(ctx: Context) -> dict:
    import importlib.util

    size, batch, steps, rounds = (32, 16, 2, 2) if ctx.smoke or not ctx.cuda else (224, 128, 30, 3)
    data = _data(ctx, size, steps, batch)
    runs = {"compress (amp auto, NHWC auto, cache on GPU)": lambda: run_compress(ctx, data, batch),
            "plain loop (bf16, NHWC, fused SGD, cache on GPU)": lambda: run_plain(ctx, data, batch)}
    notes = []
    if importlib.util.find_spec("torchdistill") is None:
        notes.append("torchdistill is not installed: its rows are missing")
    else:
        runs["torchdistill 1.1.5 fp32 (DataLoader workers)"] = lambda: run_torchdistill(ctx, data, batch, False)
        if ctx.cuda:
            runs["torchdistill 1.1.5 + bf16 autocast, NHWC"] = lambda: run_torchdistill(ctx, data, batch, True)
    clocks_before = gpu_clocks() if ctx.cuda else ""
    per: dict[str, list[float]] = {k: [] for k in runs}
    errors: dict[str, str] = {}
    for _ in range(rounds):  # interleaved
        for k, fn in runs.items():
            if k in errors or ctx.report.left() < 15:
                continue
            try:
                per[k].append(fn())
            except Exception as exc:  # one contestant failing leaves the others' numbers
                errors[k] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    clocks_after = gpu_clocks() if ctx.cuda else ""
    med = {k: statistics.median(v) for k, v in per.items() if v}
    ours = med.get(next(iter(runs)))
    plain = med.get("plain loop (bf16, NHWC, fused SGD, cache on GPU)")
    td = max((v for k, v in med.items() if k.startswith("torchdistill")), default=None)
    table = [f"{size} px, batch {batch}, {steps} steps/epoch, {rounds} interleaved rounds; GPU before: {clocks_before}; "
             f"after: {clocks_after}", "", "| run | images/s (median) | runs | × plain loop | × best torchdistill |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for k, v in med.items():
        table.append(f"| {k} | {v:.0f} | {len(per[k])} | {v / plain:.2f} | " + (f"{v / td:.2f} |" if td else "– |")
                     if plain else f"| {k} | {v:.0f} | {len(per[k])} | – | – |")
    table += [f"| {k} | failed: {e} | | | |" for k, e in errors.items()]
    goal = ours is not None and plain is not None and ours >= 0.95 * plain and (td is None or ours >= 1.3 * td)
    detail = (f"compress {ours:.0f} img/s = {ours / plain:.2f}× plain" if ours and plain else "no compress number") + \
        (f", {ours / td:.2f}× torchdistill" if ours and td else "") + "; goal ≥ 0.95× plain, ≥ 1.3× torchdistill"
    broken = [k for k in errors if not k.startswith("torchdistill")]  # a baseline failing is a note, not ours
    status = "pass" if (goal or not ctx.cuda) and not broken else "fail"  # the goals are a GPU's
    return {"status": status, "detail": detail + ("; " + "; ".join(notes) if notes else ""), "runs": per,
            "errors": errors, "table": table, "clocks": [clocks_before, clocks_after]}
