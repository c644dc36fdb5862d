"""ERKT-Net §4.3 (Eq. 14): grid-search the weights of an ensemble teacher on the members' validation split."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from compress.checkpoint import read_manifest
from compress.data.sources import checkpoint_dataset
from compress.errors import CheckpointError, DataError, UserInputError
from compress.evaluation.classifier import predict
from compress.hardware import resolve_device
from compress.io import to_jsonable
from compress.models.restore import load_checkpoint
from compress.models.ensemble import COMBINE, combine_outputs
from compress.models.teacher import adapt_input

DEFAULT_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class EnsembleCandidate:
    weights: list[float]
    oa: float


@dataclass
class EnsembleSearchResult:
    """Each grid candidate's accuracy on ``split``; ``best`` is the first candidate of highest OA."""

    checkpoints: list[str]
    architectures: list[str]
    member_oa: list[float]
    vary: int
    split: str
    images: int
    combine: str
    split_hash: str | None
    candidates: list[EnsembleCandidate]
    best: EnsembleCandidate

    def to_dict(self) -> dict:
        return to_jsonable(self)


def grid_weights(n: int, vary: int, grid: Sequence[float] = DEFAULT_GRID) -> list[list[float]]:
    """Eq. 14 generalised: member ``vary`` gets ``g``, the other ``n − 1`` share ``1 − g`` equally."""
    if n < 2:
        raise UserInputError("An ensemble weight search needs at least two member checkpoints.")
    if not 0 <= vary < n:
        raise UserInputError(f"--vary {vary} is not a member index; use 0..{n - 1} (the order of the checkpoints).")
    out = []
    for g in grid:
        if not 0.0 < float(g) < 1.0:
            raise UserInputError(f"Grid weights must be in (0, 1), got {g}.")
        rest = (1.0 - float(g)) / (n - 1)
        out.append([float(g) if i == vary else rest for i in range(n)])
    return out


def search_ensemble_weights(checkpoints: Sequence[str], data: str | None = None, *, vary: int = 0,
                            grid: Sequence[float] = DEFAULT_GRID, split: str = "val", combine: str = "logits",
                            image_size: int | None = None, device: str = "auto",
                            batch_size: int = 128) -> EnsembleSearchResult:
    """Grid-search one member's weight (others share the rest) and report every candidate's OA.

    The images are the ``split`` part of the members' saved ``split.json`` (``data`` relocates its
    folder); the split must match the hash recorded in every member's manifest, so the images scored
    were never trained on. Each member sees the images with its own preprocessing. Member logits are
    computed once; each candidate only re-weights them.
    """
    if combine not in COMBINE:
        raise UserInputError(f"combine must be one of {', '.join(COMBINE)}, got '{combine}'.")
    if split not in ("val", "test"):
        raise UserInputError(f"split must be 'val' or 'test', got '{split}'.")
    candidates_w = grid_weights(len(checkpoints), vary, grid)
    manifests = [read_manifest(c) for c in checkpoints]
    names = list(manifests[0].class_names)
    for c, m in zip(checkpoints, manifests):
        if list(m.class_names) != names:
            raise CheckpointError(f"Member '{c}' predicts classes {list(m.class_names)[:5]}..., the first member "
                                  f"{names[:5]}...; ensemble members must share their classes.")
    hashes = {m.split_hash for m in manifests if m.split_hash}
    if len(hashes) > 1:
        raise DataError(f"The members were trained on different splits ({', '.join(sorted(hashes))}); their "
                        "validation images overlap others' training images. Train them with the same data, "
                        "--train-ratio and --seed.")
    first = manifests[0].replace(image_size=image_size or manifests[0].image_size)
    found = checkpoint_dataset(load_checkpoint(checkpoints[0]).path, first, data=data, part=split)
    if found.split is None:
        raise DataError(f"No split.json above '{checkpoints[0]}'; the search needs the members' run folder.")
    if hashes and found.split.hash not in hashes:
        raise DataError(f"The saved split ({found.split.hash}) differs from the members' ({hashes.pop()}); "
                        "pass members of one run.")
    dataset = found.dataset
    if len(dataset) == 0:
        raise DataError("The members' run has no validation images (val_fraction 0); use --split test.")
    dev = resolve_device(device)
    outputs, labels = [], None
    for c, m in zip(checkpoints, manifests):
        model = adapt_input(load_checkpoint(c, device=dev).model, m, first.mean, first.std, first.image_size).to(dev)
        logits, labels = predict(model, dataset, dev, batch_size=batch_size)
        outputs.append(torch.from_numpy(logits))
    y = torch.from_numpy(labels)
    member_oa = [int((o.argmax(1) == y).sum()) / len(y) for o in outputs]
    cands = []
    for w in candidates_w:
        pred = combine_outputs(outputs, w, combine).argmax(1)
        cands.append(EnsembleCandidate(weights=[round(v, 6) for v in w], oa=int((pred == y).sum()) / len(y)))
    best = max(cands, key=lambda cand: cand.oa)  # max keeps the first of equal OAs
    return EnsembleSearchResult(checkpoints=[str(c) for c in checkpoints],
                                architectures=[m.architecture for m in manifests], member_oa=member_oa, vary=vary,
                                split=split, images=int(len(y)), combine=combine, split_hash=found.split.hash,
                                candidates=cands, best=best)
