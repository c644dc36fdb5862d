"""Structured (channel) pruning with Torch-Pruning's dependency graph: every layer coupled to a removed
channel (the next conv, BatchNorm, residual adds, depthwise groups, SE blocks) shrinks with it.

``prune_model`` removes channels in small steps (``step`` of the channels each time, by group
magnitude, BatchNorm scale or first-order Taylor importance, globally or the same share per layer,
counts rounded to ``round_to``) and asks ``done(model)`` after each step whether the budget is met.
The classifier and the ``keep`` layers are never pruned. ``torch-pruning`` is imported lazily.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from compress.errors import UserInputError, require
from compress.registry import Registry

IMPORTANCE: Registry[Callable[[], Any]] = Registry("pruning importance")


def _tp():
    return require("torch_pruning", "Structured pruning", "pip install torch-pruning")


IMPORTANCE.add("magnitude", lambda: _tp().importance.GroupMagnitudeImportance(p=2))
IMPORTANCE.add("bn-scale", lambda: _tp().importance.BNScaleImportance())
IMPORTANCE.add("taylor", lambda: _tp().importance.GroupTaylorImportance())


@dataclass(frozen=True)
class PruneConfig:
    """How channels are chosen: ``step`` share of channels per step, up to ``max_ratio``."""

    importance: str = "magnitude"  # magnitude | bn-scale | taylor
    mode: str = "width"  # width: channels of every layer | depth: whole residual blocks (compress.models.depth)
    global_pruning: bool = False  # False: the same share in every layer
    round_to: int = 8
    step: float = 0.02
    max_ratio: float = 0.9
    keep: tuple[str, ...] = ()
    calib_batches: int = 4  # Taylor importance: batches of gradients per step

    def __post_init__(self) -> None:
        IMPORTANCE.get(self.importance)
        PRUNE_MODES.get(self.mode)
        if self.round_to < 1:
            raise UserInputError(f"--round-to must be ≥ 1, got {self.round_to}.")
        if not 0 < self.step < self.max_ratio < 1:
            raise UserInputError(f"pruning steps need 0 < step ({self.step}) < max ratio ({self.max_ratio}) < 1.")


@dataclass
class PruneStep:
    ratio: float  # share of channels the schedule has removed
    info: dict[str, Any] = field(default_factory=dict)  # params, MACs, latency … as the budget measures them


def _kept_layers(model: nn.Module, keep: Sequence[str]) -> list[nn.Module]:
    from compress.models.introspect import classifier_module

    modules = dict(model.named_modules())
    bad = [k for k in keep if k not in modules]
    if bad:
        import difflib

        close = difflib.get_close_matches(bad[0], list(modules), n=3)
        raise UserInputError(f"--keep '{bad[0]}' is not a module of this model"
                             f"{'; close: ' + ', '.join(close) if close else ''}.")
    return [classifier_module(model)[1], *(modules[k] for k in keep)]


def _traced(model: nn.Module, example: torch.Tensor, build: Callable[[], Any]) -> Any:
    """Run ``build`` (the dependency graph, or a forward after a step); when it fails, name the layer."""
    entered: list[str] = []
    hooks = [m.register_forward_pre_hook(lambda _m, _i, n=name: entered.append(n) and None)
             for name, m in model.named_modules() if name]
    try:
        return build()
    except Exception as exc:  # Torch-Pruning raises many types for graphs it cannot follow
        where = entered[-1] if entered else type(model).__name__
        raise UserInputError(f"Structured pruning cannot follow this model's graph (it fails at or after layer '{where}': "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}); keep that layer with --keep "
                             "or prune another architecture.") from exc
    finally:
        for h in hooks:
            h.remove()


def prune_model(model: nn.Module, example: torch.Tensor, cfg: PruneConfig, done: Callable[[nn.Module], tuple[bool, dict]],
                calib: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
                progress: Callable[[str], None] | None = None) -> list[PruneStep]:
    """Prune ``model`` in place until ``done(model)`` says the budget is met (or ``max_ratio`` is reached).

    ``done`` returns ``(met, info)``; every step's info is returned. ``calib`` (images, labels) batches
    feed the Taylor importance.
    """
    tp = _tp()
    model.eval()
    steps = int(round(cfg.max_ratio / cfg.step))
    pruner = _traced(model, example, lambda: tp.pruner.MetaPruner(
        model, example, importance=IMPORTANCE.get(cfg.importance)(), pruning_ratio=cfg.max_ratio,
        iterative_steps=steps, ignored_layers=_kept_layers(model, cfg.keep), round_to=cfg.round_to,
        global_pruning=cfg.global_pruning))
    met, info = done(model)
    history = [PruneStep(0.0, info)]
    batches = list(calib or [])[: cfg.calib_batches]
    for k in range(1, steps + 1):
        if met:
            break
        if cfg.importance == "taylor":
            if not batches:
                raise UserInputError("Taylor importance needs calibration images (the checkpoint's training split).")
            model.zero_grad()
            for x, y in batches:
                nn.functional.cross_entropy(model(x), y).backward()
        pruner.step()
        # a graph the dependency tracer could not follow is pruned inconsistently: the next forward fails
        with torch.no_grad():
            _traced(model, example, lambda: model(example))
        met, info = done(model)
        history.append(PruneStep(round(cfg.max_ratio * k / steps, 4), info))
        if progress:
            progress(f"step {k}: {info}")
    model.zero_grad(set_to_none=True)
    return history


def _depth(model: nn.Module, example: torch.Tensor, cfg: PruneConfig, done: Callable[[nn.Module], tuple[bool, dict]],
           calib: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None, progress=None) -> list[PruneStep]:
    from compress.models.depth import prune_depth

    steps = prune_depth(model, example, done, [x for x, _ in calib] if calib else None, cfg.keep)
    return [PruneStep(ratio, info) for ratio, info in steps]


# how a model is made smaller: prune_model's signature (model, example, cfg, done, calib) → the steps
PRUNE_MODES: Registry[Callable[..., list[PruneStep]]] = Registry("pruning mode")
PRUNE_MODES.add("width", prune_model)
PRUNE_MODES.add("depth", _depth)
