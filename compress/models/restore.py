"""Building a model from a checkpoint: the zoo architecture named in the manifest, then its weights.

The format itself (manifest, files, hashes) is core (:mod:`compress.checkpoint`); this module is the
one place that turns a manifest back into an ``nn.Module``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from compress.checkpoint import Manifest, check_compatible, read_manifest, read_weights, resolve_checkpoint_dir
from compress.errors import CheckpointError


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode, on ``device``) and its manifest."""

    model: nn.Module
    manifest: Manifest
    path: Path


def build_model(manifest: Manifest) -> nn.Module:
    """An untrained model of the manifest's architecture (no pretrained download)."""
    from compress.models.factory import create_model

    return create_model(manifest.architecture, num_classes=manifest.num_classes, in_chans=manifest.in_chans,
                        **manifest.model_kwargs)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                    expect: Manifest | None = None) -> Checkpoint:
    """Load a checkpoint; with ``expect`` also check architecture and class list match."""
    ckpt_dir = resolve_checkpoint_dir(path)
    manifest = read_manifest(ckpt_dir)
    if expect is not None:
        check_compatible(manifest, expect, str(ckpt_dir))
    model = build_model(manifest)
    state = read_weights(ckpt_dir)
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise CheckpointError(f"{ckpt_dir / 'model.safetensors'}: layer '{k}' holds {tuple(state[k].shape)} but the "
                              f"manifest's architecture gives it {tuple(own[k].shape)} ({len(wrong)} layer(s) differ); "
                              "the manifest does not belong to these weights (was it edited?).")
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{ckpt_dir / 'model.safetensors'} does not fit architecture '{manifest.architecture}': "
            f"missing {list(result.missing_keys)[:5]}, unexpected {list(result.unexpected_keys)[:5]}."
        )
    return Checkpoint(model=model.to(device).eval(), manifest=manifest, path=ckpt_dir)
