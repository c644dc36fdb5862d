"""Checks that run before any training: a run must not train a teacher for minutes and then stop on
something that was knowable at once (a bad weights file, a method that cannot handle the data's
bands, a sampler that cannot fill a batch, a model that rejects the input size).

``check_inputs`` looks at names and files before the data is read; ``dry_step`` then builds each
stage exactly as the stage builder will (same code) and runs one training step on a few real
images, without a backward pass, on CPU.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable

import torch
from torch import nn
from torch.utils.data import Dataset

from compress.checkpoint import Manifest
from compress.data.bundle import DataBundle
from compress.engine.stage import StageSpec, build_stage_method
from compress.errors import CompressError, UserInputError

DRY_IMAGES = 16


def check_weights(spec: str | None, flag: str) -> None:
    """The weights file or package exists and holds a readable state dict."""
    if not spec:
        return
    from compress.models.weights import read_state_dict, resolve_weights_file

    try:
        read_state_dict(resolve_weights_file(spec)[0])
    except CompressError as exc:
        raise type(exc)(f"{flag} {spec}: {exc}") from exc


def check_models(names: Iterable[str]) -> None:
    from compress.models import resolve_model

    for name in names:
        if name and name != "auto":
            resolve_model(name)


def check_checkpoints(paths: Iterable[str], flag: str) -> tuple[Manifest, ...]:
    """The manifests of ``paths``, in order (a missing or unreadable checkpoint is one line)."""
    from compress.checkpoint import read_manifest

    return tuple(read_manifest(p) for p in paths)


def check_folder(path: str | None, flag: str) -> None:
    if path and not Path(path).is_dir():
        raise UserInputError(f"{flag} '{path}' is not a folder.")


def _first_batch(method, data: DataBundle, batch_size: int, seed: int) -> list[int]:
    """The indices of a first batch as the method's sampler lays it out, at the real batch size (so a
    sampler that cannot fill it fails here) and then at a small one for the dry step."""
    labels = data.train.labels
    if method.batch_sampler(labels, batch_size, seed, 0) is None:
        return list(range(min(DRY_IMAGES, len(data.train))))
    small = method.batch_sampler(labels, min(batch_size, DRY_IMAGES), seed, 0)
    for batch in small:
        return list(batch)
    raise UserInputError(f"Method '{type(method).__name__}' drew no batch from {len(labels)} training images.")


def dry_step(spec: StageSpec, data: DataBundle, teacher: nn.Module | None = None,
             unlabeled: Dataset | None = None) -> None:
    """Build ``spec``'s stage and run one loss evaluation on a few training images (no weights change)."""
    from compress.engine.loop import to_device
    from compress.engine.lr_scale import stack_items

    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, device="cpu"))
    method = build_stage_method(spec, data, teacher, unlabeled)
    custom = method.train_transform(data.image_size, data.in_chans)
    indices = _first_batch(method, data, spec.train.batch_size, spec.train.seed)
    train = data.train
    if custom is not None:
        import copy

        train = copy.copy(train)
        train.transform = custom
    x, y = stack_items(train, indices)
    method.train()
    try:
        with torch.no_grad():
            out = method.training_step(to_device(x, torch.device("cpu")), y)
    except CompressError:
        raise
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise UserInputError(f"The {spec.role} stage ({spec.arch}, method {spec.method}) fails on this data before "
                             f"training starts: {first}. Check --image-size, the bands of the data and the model.") from exc
    finally:
        method.release()
    bad = [k for k, v in out.losses.items() if not torch.isfinite(v).all()]
    if bad:
        raise UserInputError(f"The {spec.role} stage's loss term(s) {', '.join(bad)} are not finite on the first "
                             "batch; check the method parameters (-p) and the data.")
