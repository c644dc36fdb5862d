"""A learning rate per method: the automatic rate is calibrated for cross-entropy, so a method whose loss
pushes the student harder gets a proportionally smaller one.

With SGD a step moves the weights by ``lr · ‖∇L‖``. Methods differ in loss scale: PSKD's summed loss
(Eq. 9) has two to three times the gradient of CE at the same rate, KD's τ²-scaled term dominates the
first epochs of a from-scratch student (issue 28: 9.5 against CE's 2.0, at chance for four epochs). So
before training, on a few training batches, the gradient norm of the method's loss over the student's
classifier (the layer producing the logits) is compared with that of plain CE on the same images and
weights, and the automatic rate is multiplied by ``clip(‖∇CE‖ / ‖∇L_method‖, MIN_SCALE, 1)`` (median
over the batches). The classifier sees every term on the logits (CE, KD, DKD, DIST, mixed images, pair
terms) and none on intermediate features: feature terms (AT, FitNet, SP, RKD) are large on a random
student and vanish as its features align, so scaling the whole run's rate by their first-batch size
would starve the rest of training. A method at most as steep as CE keeps CE's rate: the rate was tuned
for CE and a larger one is never safer. AdamW normalises each step by the gradient's running size, so
its rate is left as it is; ``--lr`` always wins.

The loss is measured in epoch 0, ramps included: DKD (at its then-default β 8) is measured at 1/20 of its
weight (1.6× CE's gradient, 61 % of the rate). Measured at full weight instead (10–42× CE, the 0.1 floor), DKD
lost 1.8–1.9 pt on the default pruned student of two class-disjoint AID parts, and from scratch it ended −2.4
/ +0.3 / +7.7 pt against its baseline on three parts where KD gained +3.1 / +6.1 / +17.1
(bench/history/diary.md §Issue 28, stop 53): the early, larger steps are what DKD's ramp is for.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

MIN_SCALE = 0.1  # a loss more than 10× steeper than CE is a setting to fix, not a rate to follow
BATCHES = 4
BATCH = 32
RECORD = "lr_scale.json"  # in the stage folder: a resumed stage keeps the rate it started with


@dataclass(frozen=True)
class LrScale:
    """``scale`` multiplies the automatic rate; ``ratios``: ‖∇L_method‖ / ‖∇CE‖ per measured batch."""

    scale: float
    ratios: tuple[float, ...] = ()
    why: str = ""


def stack_items(dataset: Dataset, indices: list[int]) -> tuple[Any, torch.Tensor]:
    """``(images, labels)`` of ``dataset[indices]``: images ``[B, C, H, W]`` (a tuple of them for multi-view
    items), labels ``[B]``."""
    items = [dataset[i] for i in indices]
    first = items[0][0]
    x = torch.stack([it[0] for it in items]) if isinstance(first, torch.Tensor) else \
        tuple(torch.stack([it[0][j] for it in items]) for j in range(len(first)))
    return x, torch.tensor([int(it[1]) for it in items])


def _grad_norm(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=False)
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))


def _first_batches(method, dataset: Dataset, n: int, batches: int, seed: int) -> list[list[int]]:
    """The first ``batches`` batches of ``n`` as the method's own sampler lays them out, else seeded random."""
    labels = getattr(dataset, "labels", None)
    sampler = method.batch_sampler(labels, n, seed, 0) if labels is not None else None
    if sampler is not None:
        return [list(b) for b, _ in zip(sampler, range(batches))]
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(len(dataset), generator=g)[:n].tolist() for _ in range(batches)]


def measure_lr_scale(method, dataset: Dataset, seed: int, batches: int = BATCHES, batch: int = BATCH) -> LrScale:
    """Gradient ratio (over the student's classifier) of ``method``'s loss to CE on the first ``batches``
    batches of ``dataset`` (weights, BatchNorm statistics and the method's state are restored afterwards)."""
    from compress.models.introspect import classifier_module

    student = method.student
    params = [p for p in classifier_module(student)[1].parameters() if p.requires_grad]
    saved = {k: v.detach().clone() for k, v in method.state_dict().items()}
    device = params[0].device
    n = min(batch, len(dataset))
    ratios = []
    method.train()
    try:
        for idx in _first_batches(method, dataset, n, batches, seed):
            x, y = stack_items(dataset, idx)
            x = x.to(device) if isinstance(x, torch.Tensor) else tuple(t.to(device) for t in x)
            y = y.to(device)
            out = method.training_step(x, y)
            steep = _grad_norm(sum(out.losses.values()), params)
            logits = student(x if isinstance(x, torch.Tensor) else x[0])
            if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] != method.num_classes:
                return LrScale(1.0, why="the student's output is not class logits: CE's rate kept")
            ce = _grad_norm(F.cross_entropy(logits, y), params)
            if ce > 0 and torch.isfinite(torch.tensor(steep)):
                ratios.append(steep / ce)
    finally:
        method.load_state_dict(saved)
        for p in student.parameters():
            p.grad = None
    if not ratios:
        return LrScale(1.0, why="no batch gave a usable gradient: CE's rate kept")
    ratio = statistics.median(ratios)
    scale = min(1.0, max(MIN_SCALE, 1.0 / ratio)) if ratio > 0 else 1.0
    return LrScale(round(scale, 4), tuple(round(r, 4) for r in ratios),
                   f"gradient {ratio:.2f}× CE's on {len(ratios)} batches of {n}")


def stage_lr_scale(method, method_name: str, dataset: Dataset, train, run_dir: Path, task: str) -> LrScale:
    """The scale a stage trains at: 1 for CE, a given ``--lr``, AdamW or embeddings; else measured once and
    kept in ``run_dir/lr_scale.json`` (a resumed stage reads it back: its weights are no longer the first)."""
    from compress.io import read_json, write_json_atomic

    if method_name == "ce" or train.lr is not None or train.optimizer != "sgd" or task != "classification":
        return LrScale(1.0)
    record = run_dir / RECORD
    if record.is_file():
        d = read_json(record)
        return LrScale(d["scale"], tuple(d["ratios"]), d["why"])
    from compress.parallel import active, gather_objects, is_main

    s = measure_lr_scale(method, dataset, train.seed)
    if active():  # every rank must step at the same rate: rank 0's measurement holds
        s = gather_objects(s)[0]
    if is_main():
        write_json_atomic(record, {"scale": s.scale, "ratios": list(s.ratios), "why": s.why})
    return s
