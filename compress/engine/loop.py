"""The one training loop for teachers and students: any registered method, CPU or CUDA, resumable.

Per step nothing is read back to the host: loss terms and the accuracy count accumulate on the
device and are read every ``log_every`` steps and at the end of the epoch (the non-finite check
rides on that read). A diverging run (see :mod:`compress.engine.divergence`) stops with one line.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compress.checkpoint import Manifest, commit_dir, read_manifest, read_weights, recover_dir, save_checkpoint
from compress.data.bundle import DataBundle
from compress.engine import distributed as dist
from compress.engine.train_config import TrainConfig
from compress.engine.precision import amp_dtype, autocast, channels_last, resolve_device
from compress.engine.divergence import DivergenceMonitor, TrainingDiverged, diverged_message, monitored_loss
from compress.engine.epoch import build_loader, loader_seed, write_history
from compress.engine.optim import build_optimizer, lr_at, set_lr
from compress.engine.progress import NullProgress, ProgressSink
from compress.engine.state import load_state, save_state
from compress.errors import CheckpointError, UserInputError
from compress.evaluation.classifier import write_classification_outputs
from compress.io import write_json_atomic
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


class NonFiniteLoss(Exception):
    """Raised inside an epoch; ``fit`` turns it into ``TrainingDiverged`` with what is kept."""


@dataclass
class _Run:
    """What the loop carries across epochs (restored from ``checkpoints/last`` on resume)."""

    start_epoch: int = 0
    best_val: float = -1.0
    best_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    start_val: float | None = None  # validation score of the initial weights (``eval_start``)


def resumable(ckpt_dir: Path) -> bool:
    """Whether ``fit(resume=True)`` would continue from a saved state (also one a kill left mid-swap)."""
    return any((ckpt_dir / name / "train_state.json").is_file() for name in ("last", ".last.new", ".last.old"))


def _restore(method: Method, optimizer, scaler, ckpt_dir: Path) -> _Run:
    if not (ckpt_dir / "last" / "train_state.json").is_file():
        return _Run()  # nothing saved yet: a fresh start is the correct continuation
    state = load_state(ckpt_dir / "last")
    weights = read_weights(ckpt_dir / "last")
    missing = method.student.load_state_dict(weights, strict=False)
    if missing.missing_keys or missing.unexpected_keys:
        raise CheckpointError(f"{ckpt_dir / 'last'} does not match the student architecture; use a new --out.")
    try:
        method.load_state_dict({**{f"student.{k}": v for k, v in weights.items()}, **state["method"]}, strict=True)
    except RuntimeError as exc:  # a buffer the method has and the checkpoint lacks (or the reverse)
        raise CheckpointError(f"{ckpt_dir / 'last'} does not hold this method's state "
                              f"({str(exc).splitlines()[0][:120]}); use a new --out.") from exc
    optimizer.load_state_dict(state["optimizer"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return _Run(int(state["epoch"]), float(state["best_val"]), int(state["best_epoch"]), list(state["history"]),
                state.get("start_val"))


def _read(sums: dict[str, torch.Tensor]) -> dict[str, float]:
    """The one host read of a logging window: loss sums (over all ranks) as floats."""
    from compress.parallel import all_reduce_sum

    values = all_reduce_sum(torch.stack(list(sums.values()))).tolist()
    return dict(zip(sums, values))


def _train_epoch(step, method: Method, loader, optimizer, scaler, cfg: TrainConfig, epoch: int, steps_per_epoch: int,
                 device: torch.device, amp, nhwc: bool, progress: ProgressSink) -> dict[str, Any]:
    """One pass over ``loader``; returns the epoch's history row (mean loss terms, train accuracy, lr).

    ``step`` is the method itself or its DistributedDataParallel wrapper (whose forward is the step).
    """
    from compress.losses.checks import trusted_values
    from compress.parallel import all_reduce_sum, world_size

    sums: dict[str, torch.Tensor] = {}
    correct = torch.zeros((), dtype=torch.int64, device=device)
    counted = n_batches = images = 0
    read: dict[str, float] = {}
    lr = cfg.lr
    params = list(method.trainable_parameters()) if cfg.grad_clip > 0 else []
    for i, (x, y) in enumerate(loader):
        lr = lr_at(cfg, epoch * steps_per_epoch + i, steps_per_epoch)
        set_lr(optimizer, lr)
        x, y = to_device(x, device), to_device(y, device)
        if nhwc and isinstance(x, torch.Tensor):
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp), trusted_values():
            out = step(x, y)
            loss = sum(out.losses.values())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        for k, v in (("loss", loss), *out.losses.items()):
            t = v.detach().to(torch.float64)
            sums[k] = sums[k] + t if k in sums else t
        if out.logits is not None and out.targets is not None:
            correct += (out.logits.detach().argmax(1) == out.targets).sum()
            counted += int(out.targets.numel())
        n_batches += 1
        images += len(y) * world_size()
        last = i + 1 == steps_per_epoch
        if (i + 1) % cfg.log_every == 0 or last:
            read = {k: v / world_size() for k, v in _read(sums).items()}
            if not all(np.isfinite(list(read.values()))):
                terms = ", ".join(f"{k} {v / n_batches:.4g}" for k, v in read.items() if k != "loss")
                raise NonFiniteLoss(f"the loss became non-finite by epoch {epoch + 1}, step {i + 1} (mean terms: "
                                    f"{terms})")
        progress.advance(1, f"loss {read['loss'] / n_batches:.3f} lr {lr:.2e}" if read else "")
    row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
    row.update({f"train_{k}": v / max(1, n_batches) for k, v in read.items()})
    if counted:
        c = all_reduce_sum(torch.stack([correct.to(torch.float64), torch.tensor(float(counted), device=device,
                                                                               dtype=torch.float64)])).tolist()
        row["train_acc"] = c[0] / c[1]
    else:
        row["train_acc"] = None
    row["_images"] = images
    return row


def fit(method: Method, data: DataBundle, cfg: TrainConfig, run_dir: str | Path, manifest: Manifest, *,
        resume: bool = False, workers: int | None = None, progress: ProgressSink | None = None,
        stop_after_epochs: int | None = None, eval_start: bool = False) -> FitResult:
    """Train ``method.student`` for ``cfg.epochs``; checkpoints in ``run_dir/checkpoints/{best,last}``.

    Every epoch reseeds all RNGs from (seed, epoch) and the LR is a function of the step, so a run
    resumed from ``last`` continues exactly as the uninterrupted run would have.
    ``stop_after_epochs`` ends the run early (used to simulate a kill in tests). ``eval_start`` scores
    the initial weights on the validation split first: they are the checkpoint to beat (``best`` at
    epoch 0), and a collapse from that score stops the run in its first epoch (fine-tuning a trained
    model, where starting at 85 % and falling to chance must not run to the end).
    """
    progress = progress or NullProgress()
    # a no-op when the stage builder resolved it already
    cfg = cfg.resolved(pretrained=bool(manifest.init), train_images=len(data.train))
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    device = resolve_device(cfg.device)
    ctx = dist.init(device)
    if device.type == "cuda" and ctx.world > 1:
        device = torch.device("cuda", ctx.device_index)
    amp = amp_dtype(cfg.amp, device)
    seed_everything(cfg.seed)
    if cfg.sync_bn and ctx.world > 1:
        method.student = dist.sync_batchnorm(method.student, device)
    nhwc = channels_last(cfg.memory_format, device, amp, method.student)
    method.to(device, memory_format=torch.channels_last) if nhwc else method.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: pick the fastest kernels once
    if cfg.compile:
        method.student.compile()
        if method.teacher is not None:
            method.teacher.compile()
    optimizer = build_optimizer(method.trainable_parameters(), cfg, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    if resume:
        if dist.is_main():
            recover_dir(ckpt_dir / "best")
            recover_dir(ckpt_dir / "last", complete_marker="train_state.json")
        dist.barrier()
    run = _restore(method, optimizer, scaler, ckpt_dir) if resume else _Run()
    step = dist.wrap(method, device)
    config = manifest.config
    if isinstance(config.get("train"), dict):  # the manifest records the learning rate actually used
        config = {**config, "train": {**config["train"], "lr": cfg.lr, "warmup_epochs": cfg.warmup_epochs}}
    manifest = manifest.replace(world_size=ctx.world, config=config)
    monitor = DivergenceMonitor(classes=len(data.class_names), val_images=len(data.val) if data.val is not None else 0)
    if eval_start and data.val is not None and run.start_val is None and run.start_epoch == 0:
        method.eval()
        run.start_val = run.best_val = method.evaluate(data.val, data.class_names, device, amp)[0]
        if dist.is_main():
            start = manifest.replace(epoch=0, metrics={"val_score": run.start_val})
            commit_dir(ckpt_dir / "best", lambda d: save_checkpoint(d, method.student, start))
    monitor.seed(run.start_val)
    monitor.restore(run.history)
    loader = build_loader(method, data, cfg, workers, device, progress)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise UserInputError(f"The training set has {len(data.train)} images, fewer than one batch of "
                             f"{cfg.batch_size}; lower --batch-size.")
    from compress.engine.run_log import RunLogger

    logger = RunLogger(run_dir, cfg.log if dist.is_main() else "none")
    t_run = time.perf_counter()
    seen_images, train_seconds = 0, 0.0
    for epoch in range(run.start_epoch, cfg.epochs):
        if stop_after_epochs is not None and epoch >= stop_after_epochs:
            break
        seed_everything(loader_seed(cfg.seed, epoch) + 17)
        method.train()
        method.on_epoch_start(epoch, cfg.epochs)
        loader.batch_sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        progress.start(f"epoch {epoch + 1}/{cfg.epochs}", len(loader))
        try:
            row = _train_epoch(step, method, loader, optimizer, scaler, cfg, epoch, len(loader), device, amp, nhwc,
                               progress)
        except NonFiniteLoss as exc:
            progress.stop()
            best = str(ckpt_dir / "best") if (ckpt_dir / "best").is_dir() else None
            raise TrainingDiverged(diverged_message(str(exc), manifest.role, cfg.lr, best)) from None
        progress.stop()
        epoch_time = time.perf_counter() - t0
        images = row.pop("_images")
        train_seconds += epoch_time
        seen_images += images
        row["epoch_seconds"] = round(epoch_time, 3)
        row["images_per_second"] = round(images / max(epoch_time, 1e-9), 1)
        is_last = epoch + 1 == cfg.epochs
        if data.val is not None and ((epoch + 1) % cfg.eval_every == 0 or is_last):
            score, _, _ = method.evaluate(data.val, data.class_names, device, amp)  # the same on every rank
            row["val_score"] = score
            # the starting weights (a fine-tune's epoch 0) are replaced only by a better score: never worse
            # than doing nothing; between trained epochs the later one wins within the noise
            improved = keeps(score, run.best_val, len(data.val)) if run.best_epoch > 0 else score > run.best_val
        else:
            improved = data.val is None
        run.history.append(row)
        reason = monitor.check(epoch + 1, monitored_loss(row), row.get("val_score"), row.get("train_acc"))
        if reason is not None:
            if dist.is_main():
                write_history(run_dir, run.history)
            best = str(ckpt_dir / "best") if (ckpt_dir / "best").is_dir() else None
            raise TrainingDiverged(diverged_message(reason, manifest.role, cfg.lr, best))
        if improved:
            run.best_val = max(row.get("val_score", run.best_val), run.best_val) if data.val is not None else run.best_val
            run.best_epoch = epoch + 1
        if dist.is_main():
            man = manifest.replace(epoch=epoch + 1, metrics={"val_score": row.get("val_score")})
            if improved:
                commit_dir(ckpt_dir / "best", lambda d: save_checkpoint(d, method.student, man))
            state = {"epoch": epoch + 1, "best_val": run.best_val, "best_epoch": run.best_epoch,
                     "history": run.history, "start_val": run.start_val, "optimizer": optimizer.state_dict(),
                     "method": method.extra_state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else None}

            def write_last(d: Path) -> None:
                save_checkpoint(d, method.student, man)
                save_state(d, state)  # train_state.json last: its presence marks a complete folder

            commit_dir(ckpt_dir / "last", write_last, complete_marker="train_state.json")
            write_history(run_dir, run.history)
            logger.epoch(row)
        dist.barrier()
    logger.close()
    return _finish(method, data, run_dir, device, run.history, run.best_epoch,
                   time.perf_counter() - t_run, seen_images / max(train_seconds, 1e-9))


def keeps(score: float, best: float, n_val: int) -> bool:
    """Whether an epoch's checkpoint replaces the kept one: its validation score (0…1) is within one
    standard error of the difference between two scores, √(2p(1−p)/n), of the best score seen. On a small
    validation split later epochs differ by noise (20 images: 1 image = 5 pt) and the best of many epochs
    is high by chance; keeping the strictly best one picked half-trained early epochs, and within the
    noise the later, better-trained epoch of a decaying schedule wins. p is the best score smoothed as
    (k+2)/(n+4) (k images right; Agresti–Coull) so that 19/20 or 20/20 does not make one image look
    significant. On 20 digits validation images the raw rule kept a teacher at its epoch-52 peak of 19/20
    (91.2 % test) and its KD student at epoch 32 (80.8 %); their last epochs scored 96.7 % and 96.4 %."""
    if best < 0:
        return True
    n = max(n_val, 1)
    p = (min(max(best, 0.0), 1.0) * n + 2) / (n + 4)
    return score >= best - (2 * p * (1 - p) / n) ** 0.5


def _finish(method, data, run_dir: Path, device, history, best_epoch, seconds, ips) -> FitResult:
    """Evaluate the best checkpoint on the test split and write metrics + confusion matrix."""
    ckpt_dir = run_dir / "checkpoints"
    dist.barrier()  # rank 0 has written the best checkpoint every rank now loads
    if not (ckpt_dir / "best").is_dir():
        raise CheckpointError(f"No checkpoint was written under {ckpt_dir}; the run ended before its first epoch.")
    # Evaluate through the method so embedding methods report their own metrics; in full precision (amp None),
    # as the checkpoint is saved and exported: under bf16 autocast (AMX/AVX-512-BF16 CPUs, GPUs) the quick start's
    # teacher scored 2 of 1,618 test images apart from its own FP32 file.
    method.student.load_state_dict(read_weights(ckpt_dir / "best"))
    method.eval()
    _, test_d, test = method.evaluate(data.test, data.class_names, device, None)
    val_d = method.evaluate(data.val, data.class_names, device, None)[1] if data.val is not None else None
    metrics = {"test": test_d, "val": val_d, "best_epoch": best_epoch,
               "epochs": len(history), "seconds": round(seconds, 2), "images_per_second": round(ips, 1),
               "selected_on": "val (the latest epoch within 1 SE of the best)" if data.val is not None
               else "last epoch (no validation images)"}
    if dist.is_main():
        from compress.engine.run_log import plot_curves

        if hasattr(test, "confusion"):
            write_classification_outputs(run_dir, test, data.class_names)
        # The manifests of the final checkpoints carry the test metrics export/profile report.
        for name in ("best", "last"):
            m = read_manifest(ckpt_dir / name)
            extra = {"test": {k: v for k, v in test_d.items() if isinstance(v, (int, float))}} if name == "best" else {}
            write_json_atomic(ckpt_dir / name / "manifest.json", m.replace(metrics={**m.metrics, **extra}).to_dict())
        plot_curves(run_dir, history)
        # metrics.json marks the stage finished (engine.stage.finished): written last, so a run killed
        # before it re-evaluates on resume instead of keeping manifests without test metrics
        write_json_atomic(run_dir / "metrics.json", metrics)
    dist.barrier()
    return FitResult(run_dir=str(run_dir), best_checkpoint=str(ckpt_dir / "best"), last_checkpoint=str(ckpt_dir / "last"),
                     best_epoch=best_epoch, epochs=len(history), seconds=seconds, images_per_second=ips,
                     test=metrics["test"], val=metrics["val"], history=history, selected_on=metrics["selected_on"])
