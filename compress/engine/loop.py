"""The one training loop for teachers and students: any registered method, CPU or CUDA, resumable."""
from __future__ import annotations

import csv
import io
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from compress.data.bundle import DataBundle
from compress.engine import distributed as dist
from compress.engine.checkpoint import Manifest, commit_dir, recover_dir, save_checkpoint
from compress.engine.config import TrainConfig
from compress.engine.device import amp_dtype, autocast, resolve_device
from compress.engine.evaluate import write_classification_outputs
from compress.engine.optim import build_optimizer, lr_at, set_lr
from compress.engine.progress import NullProgress, ProgressSink
from compress.engine.state import load_state, save_state
from compress.errors import CheckpointError, UserInputError
from compress.io import write_json_atomic, write_text_atomic
from compress.methods.base import Method


@dataclass
class FitResult:
    """Outcome of one training run; ``test``/``val`` hold the best checkpoint's metrics (dicts)."""

    run_dir: str
    best_checkpoint: str
    last_checkpoint: str
    best_epoch: int
    epochs: int
    seconds: float
    images_per_second: float
    test: dict[str, Any]
    val: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    selected_on: str = "val"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def to_device(obj: Any, device: torch.device) -> Any:
    """Tensors, or tuples/lists/dicts of them (paired multi-source batches), moved to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 7919 + epoch * 104729 + 1) % (2**31)


def _loader(method: Method, data: DataBundle, cfg: TrainConfig, epoch: int, workers: int, device) -> DataLoader:
    data.train.set_epoch(epoch)
    batches = method.batch_sampler(data.train.labels, cfg.batch_size, cfg.seed, epoch)
    common = dict(num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=False)
    if batches is not None:
        return DataLoader(data.train, batch_sampler=batches, **common)
    gen = torch.Generator().manual_seed(_epoch_seed(cfg.seed, epoch))
    drop = cfg.drop_last and len(data.train) > cfg.batch_size
    return DataLoader(data.train, batch_size=cfg.batch_size, sampler=RandomSampler(data.train, generator=gen),
                      drop_last=drop, **common)


def _write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(history)
    write_text_atomic(run_dir / "history.csv", buf.getvalue())


def fit(method: Method, data: DataBundle, cfg: TrainConfig, run_dir: str | Path, manifest: Manifest, *,
        resume: bool = False, workers: int = 0, progress: ProgressSink | None = None,
        stop_after_epochs: int | None = None) -> FitResult:
    """Train ``method.student`` for ``cfg.epochs``; checkpoints in ``run_dir/checkpoints/{best,last}``.

    Every epoch reseeds all RNGs from (seed, epoch) and the LR is a function of the step, so a run
    resumed from ``last`` continues exactly as the uninterrupted run would have.
    ``stop_after_epochs`` ends the run early (used to simulate a kill in tests).
    """
    progress = progress or NullProgress()
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    device = resolve_device(cfg.device)
    amp = amp_dtype(cfg.amp, device)
    seed_everything(cfg.seed)
    method.to(device)
    optimizer = build_optimizer(method.trainable_parameters(), cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    history: list[dict[str, Any]] = []
    start_epoch, best_val, best_epoch = 0, -1.0, 0

    if resume:
        recover_dir(ckpt_dir / "best")
        recover_dir(ckpt_dir / "last", complete_marker="train_state.json")
    if resume and (ckpt_dir / "last" / "train_state.json").is_file():
        from safetensors.torch import load_file

        state = load_state(ckpt_dir / "last")
        weights = load_file(str(ckpt_dir / "last" / "model.safetensors"))
        missing = method.student.load_state_dict(weights, strict=False)
        if missing.missing_keys or missing.unexpected_keys:
            raise CheckpointError(f"{ckpt_dir / 'last'} does not match the student architecture; use a new --out.")
        method.load_state_dict({**{f"student.{k}": v for k, v in weights.items()}, **state["method"]}, strict=True)
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"]) if state.get("scaler") else None
        start_epoch, best_val, best_epoch = int(state["epoch"]), float(state["best_val"]), int(state["best_epoch"])
        history = list(state["history"])
    elif resume:
        pass  # nothing saved yet: a fresh start is the correct continuation

    steps_per_epoch = len(_loader(method, data, cfg, 0, 0, device))
    if steps_per_epoch == 0:
        raise UserInputError(f"The training set has {len(data.train)} images, fewer than one batch of "
                             f"{cfg.batch_size}; lower --batch-size.")
    t_run = time.perf_counter()
    seen_images, train_seconds = 0, 0.0
    for epoch in range(start_epoch, cfg.epochs):
        if stop_after_epochs is not None and epoch >= stop_after_epochs:
            break
        seed_everything(_epoch_seed(cfg.seed, epoch) + 17)
        method.train()
        method.on_epoch_start(epoch, cfg.epochs)
        loader = _loader(method, data, cfg, epoch, workers, device)
        sums: dict[str, float] = {}
        correct = counted = n_batches = epoch_images = 0
        t0 = time.perf_counter()
        progress.start(f"epoch {epoch + 1}/{cfg.epochs}", len(loader))
        for i, (x, y) in enumerate(loader):
            lr = lr_at(cfg, epoch * steps_per_epoch + i, steps_per_epoch)
            set_lr(optimizer, lr)
            x, y = to_device(x, device), to_device(y, device)
            with autocast(device, amp):
                out = method.training_step(x, y)
                loss = sum(out.losses.values())
            if not torch.isfinite(loss):
                raise UserInputError(f"The loss became {loss.item()} at epoch {epoch + 1}, step {i + 1} "
                                     f"(terms {({k: float(v) for k, v in out.losses.items()})}); lower --lr.")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(list(method.trainable_parameters()), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            n_batches += 1
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for k, v in out.losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            if out.logits is not None and out.targets is not None:
                correct += int((out.logits.argmax(1) == out.targets).sum())
                counted += int(out.targets.numel())
            n_img = len(y)
            seen_images += n_img
            epoch_images += n_img
            progress.advance(1, f"loss {sums['loss'] / n_batches:.3f} lr {lr:.2e}")
        progress.stop()
        epoch_time = time.perf_counter() - t0
        train_seconds += epoch_time
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
        row.update({f"train_{k}": v / max(1, n_batches) for k, v in sums.items()})
        row["train_acc"] = correct / counted if counted else None
        row["epoch_seconds"] = round(epoch_time, 3)
        row["images_per_second"] = round(epoch_images / max(epoch_time, 1e-9), 1)
        is_last = epoch + 1 == cfg.epochs
        eval_set = data.val if data.val is not None else None
        if eval_set is not None and ((epoch + 1) % cfg.eval_every == 0 or is_last):
            score, _, _ = method.evaluate(eval_set, data.class_names, device, amp)
            row["val_score"] = score
            improved = score > best_val
        else:
            improved = eval_set is None
        history.append(row)
        if dist.is_main():
            man = manifest.replace(epoch=epoch + 1, metrics={"val_score": row.get("val_score")})
            if improved:
                best_val = row.get("val_score", best_val) if eval_set is not None else best_val
                best_epoch = epoch + 1
                commit_dir(ckpt_dir / "best", lambda d: save_checkpoint(d, method.student, man))
            state = {"epoch": epoch + 1, "best_val": best_val, "best_epoch": best_epoch, "history": history,
                     "optimizer": optimizer.state_dict(), "method": method.extra_state_dict(),
                     "scaler": scaler.state_dict() if scaler.is_enabled() else None}

            def write_last(d: Path) -> None:
                save_checkpoint(d, method.student, man)
                save_state(d, state)  # train_state.json last: its presence marks a complete folder

            commit_dir(ckpt_dir / "last", write_last, complete_marker="train_state.json")
            _write_history(run_dir, history)
    return _finish(method, data, run_dir, manifest, device, amp, history, best_epoch, cfg,
                   time.perf_counter() - t_run, seen_images / max(train_seconds, 1e-9), workers)


def _finish(method, data, run_dir: Path, manifest: Manifest, device, amp, history, best_epoch, cfg, seconds,
            ips, workers) -> FitResult:
    """Evaluate the best checkpoint on the test split and write metrics + confusion matrix."""

    ckpt_dir = run_dir / "checkpoints"
    if not (ckpt_dir / "best").is_dir():
        raise CheckpointError(f"No checkpoint was written under {ckpt_dir}; the run ended before its first epoch.")
    from safetensors.torch import load_file

    # Evaluate through the method so embedding methods report their own metrics.
    method.student.load_state_dict(load_file(str(ckpt_dir / "best" / "model.safetensors")))
    method.eval()
    _, test_d, test = method.evaluate(data.test, data.class_names, device, amp)
    val_d = method.evaluate(data.val, data.class_names, device, amp)[1] if data.val is not None else None
    metrics = {"test": test_d, "val": val_d, "best_epoch": best_epoch,
               "epochs": len(history), "seconds": round(seconds, 2), "images_per_second": round(ips, 1),
               "selected_on": "val" if data.val is not None else "last epoch (no validation images)"}
    if dist.is_main():
        write_json_atomic(run_dir / "metrics.json", metrics)
        if hasattr(test, "confusion"):
            write_classification_outputs(run_dir, test, data.class_names)
        # The manifests of the final checkpoints carry the test metrics export/profile report.
        for name in ("best", "last"):
            from compress.engine.checkpoint import read_manifest

            m = read_manifest(ckpt_dir / name)
            extra = {"test": {k: v for k, v in test_d.items() if isinstance(v, (int, float))}} if name == "best" else {}
            write_json_atomic(ckpt_dir / name / "manifest.json", m.replace(metrics={**m.metrics, **extra}).to_dict())
    return FitResult(run_dir=str(run_dir), best_checkpoint=str(ckpt_dir / "best"), last_checkpoint=str(ckpt_dir / "last"),
                     best_epoch=best_epoch, epochs=len(history), seconds=seconds, images_per_second=ips,
                     test=metrics["test"], val=metrics["val"], history=history, selected_on=metrics["selected_on"])
