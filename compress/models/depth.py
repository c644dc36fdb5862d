"""Depth pruning: whole residual blocks removed where the skip connection carries the input unchanged.

A block computes ``x + f(x)``; where its shortcut is the identity (same shape in and out), replacing the
block by ``nn.Identity`` keeps every shape and every other weight. On a Jetson at small inputs latency
follows the number of kernels more than MACs, so dropping blocks moves latency where thinner layers
(width pruning) barely do (issue 35). Blocks go in order of how little they change their input on real
images, ``‖f(x)‖ / ‖x‖`` (residual networks degrade gracefully when such blocks are removed; Veit et al.,
NeurIPS 2016), one at a time until the budget is met; distillation from the unpruned model recovers the rest.
The dropped blocks are recorded in the pruned structure (``{"identity": true}``,
:mod:`compress.models.structure`), so every command rebuilds the model from its zoo name.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from compress.errors import UserInputError
from compress.registry import Registry

# block class name → whether this instance's shortcut is the identity (then the block can go)
IDENTITY_SKIP: Registry[Callable[[nn.Module], bool]] = Registry("residual block")
for _name in ("BasicBlock", "Bottleneck"):  # ours, timm's and torchvision's ResNets
    IDENTITY_SKIP.add(_name, lambda m: getattr(m, "downsample", 0) is None)
for _name in ("InvertedResidual", "DepthwiseSeparableConv", "EdgeResidual", "UniversalInvertedResidual"):
    # timm records the skip as has_skip; torchvision's MobileNetV2 block as use_res_connect
    IDENTITY_SKIP.add(_name, lambda m: bool(getattr(m, "has_skip", getattr(m, "use_res_connect", False))))
IDENTITY_SKIP.add("WideBasicBlock", lambda m: getattr(m, "convShortcut", 0) is None)


def removable_blocks(model: nn.Module) -> list[str]:
    """Module paths of the blocks whose shortcut is the identity, in forward order (outermost only)."""
    out: list[str] = []
    for path, mod in model.named_modules():
        name = type(mod).__name__
        if path and name in IDENTITY_SKIP and IDENTITY_SKIP.get(name)(mod) \
                and not any(path.startswith(p + ".") for p in out):
            out.append(path)
    return out


def block_contribution(model: nn.Module, paths: list[str], images: Iterable[torch.Tensor]) -> dict[str, float]:
    """``‖block(x) − x‖ / ‖x‖`` of each block in ``paths`` on ``images`` (batches, NCHW), in eval mode: how
    much the block changes what flows through it. Small = cheap to remove."""
    modules = dict(model.named_modules())
    num = dict.fromkeys(paths, 0.0)
    den = dict.fromkeys(paths, 0.0)

    def hook(path: str):
        def fn(_m, args, out):
            x = args[0]
            num[path] += float((out - x).float().pow(2).sum())
            den[path] += float(x.float().pow(2).sum())
        return fn

    handles = [modules[p].register_forward_hook(hook(p)) for p in paths]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for x in images:
                model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {p: (num[p] / den[p]) ** 0.5 if den[p] > 0 else 0.0 for p in paths}


def drop_blocks(model: nn.Module, paths: Iterable[str]) -> nn.Module:
    """Replace each block in ``paths`` by ``nn.Identity`` in place."""
    for path in paths:
        parent_path, _, leaf = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        if leaf.isdigit() and isinstance(parent, nn.Sequential):
            parent[int(leaf)] = nn.Identity()
        else:
            setattr(parent, leaf, nn.Identity())
    return model


def prune_depth(model: nn.Module, example: torch.Tensor, done: Callable[[nn.Module], tuple[bool, dict]],
                images: Iterable[torch.Tensor] | None = None, keep: Iterable[str] = ()) -> list[tuple[float, dict]]:
    """Drop removable blocks, least contribution first, until ``done(model)`` says the budget is met.

    ``images``: batches of real inputs for the contribution (the ``example`` alone when none). Returns
    the steps as (share of the removable blocks dropped, ``done``'s info with ``dropped`` and
    ``contribution``), the unpruned model first.
    """
    keep = tuple(keep)
    blocks = [p for p in removable_blocks(model) if not any(p == k or p.startswith(k + ".") for k in keep)]
    if not blocks:
        raise UserInputError(f"{type(model).__name__} has no residual block with an identity shortcut to remove; "
                             "prune its width instead (--mode width).")
    score = block_contribution(model, blocks, list(images) if images is not None else [example])
    order = sorted(blocks, key=lambda p: score[p])
    met, info = done(model)
    history = [(0.0, info)]
    for k, path in enumerate(order, 1):
        if met:
            break
        drop_blocks(model, [path])
        with torch.no_grad():
            model.eval()(example)  # the shapes still agree (an identity shortcut means same shape in and out)
        met, info = done(model)
        history.append((round(k / len(blocks), 4), {**info, "dropped": path, "contribution": round(score[path], 4)}))
    return history
