"""ERKT-Net's weighted ensemble teacher: the members' prediction scores summed with weights.

ERKT-Net §3.1 sums the weighted "prediction scores" of the members; Algorithm 1 feeds the
ensemble's output to the same loss as the student's raw output, and DIST applies softmax(·/τ) to
both, so the scores are the members' logits: ``z = Σ_i w_i · z_i`` (``combine="logits"``, default).
``combine="probs"`` averages softmax probabilities instead and returns ``log Σ_i w_i · softmax(z_i)``,
logits whose softmax is that mixture. Weights must be positive and are normalised to sum to 1 (the
paper's always do: 0.3/0.4/0.3 and Eq. 14), so ``3 4 3`` means the same as ``0.3 0.4 0.3``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from compress.errors import UserInputError

COMBINE = ("logits", "probs")


def normalize_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """Validated weights summing to 1 (``None`` → equal weights)."""
    if n < 1:
        raise UserInputError("A weighted ensemble needs at least one member model.")
    if weights is None or len(weights) == 0:
        return [1.0 / n] * n
    weights = [float(w) for w in weights]
    if len(weights) != n:
        raise UserInputError(f"Got {len(weights)} ensemble weight(s) for {n} member(s); give one weight per "
                             "teacher checkpoint, in the same order.")
    bad = [w for w in weights if not (math.isfinite(w) and w > 0)]
    if bad:
        raise UserInputError(f"Ensemble weights must be positive finite numbers, got {weights}.")
    total = sum(weights)
    return [w / total for w in weights]


class WeightedEnsemble(nn.Module):
    """``forward(x [B, C, H, W]) → [B, K]``: Σ w_i · logits_i (or the log of the weighted probabilities).

    Members must predict the same K classes; they may differ in architecture.
    """

    def __init__(self, models: Sequence[nn.Module], weights: Sequence[float] | None = None,
                 combine: str = "logits") -> None:
        super().__init__()
        if combine not in COMBINE:
            raise UserInputError(f"Ensemble combine must be one of {', '.join(COMBINE)}, got '{combine}'.")
        models = list(models)
        w = normalize_weights(weights, len(models))
        self.members = nn.ModuleList(models)
        self.combine = combine
        self.register_buffer("weights", torch.tensor(w, dtype=torch.float32), persistent=False)

    def member_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [m(x) for m in self.members]
        shapes = {tuple(o.shape) for o in outs}
        if len(shapes) != 1:
            raise UserInputError(f"Ensemble members disagree on the output shape: {sorted(shapes)}; "
                                 "every member must predict the same classes.")
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return combine_outputs(self.member_outputs(x), self.weights, self.combine)


def combine_outputs(outputs: Sequence[torch.Tensor], weights: torch.Tensor | Sequence[float],
                    combine: str = "logits") -> torch.Tensor:
    """Weighted combination of member logits ``[B, K]`` each (weights already normalised)."""
    stacked = torch.stack([o.float() for o in outputs])  # [M, B, K]
    w = torch.as_tensor(weights, dtype=stacked.dtype, device=stacked.device).view(-1, 1, 1)
    if combine == "logits":
        return (w * stacked).sum(0)
    # log Σ w_i p_i computed as logsumexp(log w_i + log p_i): stable for confident members
    return torch.logsumexp(torch.log(w) + torch.log_softmax(stacked, dim=-1), dim=0)


# ---- weight search (ERKT-Net §4.3, Eq. 14) ---------------------------------------------------------
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
        from compress.io import to_jsonable

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


class _Renormalize(nn.Module):
    """Data normalised with (mean_d, std_d) → the member's own (mean_m, std_m)."""

    def __init__(self, data_mean, data_std, model_mean, model_std) -> None:
        super().__init__()
        t = lambda v: torch.tensor(list(v), dtype=torch.float32).view(1, -1, 1, 1)  # noqa: E731
        self.register_buffer("scale", t(data_std) / t(model_std))
        self.register_buffer("shift", (t(data_mean) - t(model_mean)) / t(model_std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


def _member_data(manifests, checkpoints: Sequence[str], data_path: str | None, image_size: int | None):
    """The validation/test data of the members' run: its saved split if found, else the recorded recipe."""
    import shutil
    import tempfile

    from compress.config import build_config
    from compress.data.bundle import DataConfig, build_data
    from compress.data.split import find_split_file
    from compress.engine.checkpoint import resolve_checkpoint_dir

    first = manifests[0]
    recorded = dict(first.config.get("data") or {}) if isinstance(first.config, dict) else {}
    recorded.pop("augment", None)  # training-only settings; evaluation never augments
    if data_path is not None:
        recorded["data"] = data_path
    recorded["image_size"] = image_size or first.image_size
    cfg = build_config(DataConfig, recorded, section="data (from the member's manifest)")
    seed = int((first.config.get("train") or {}).get("seed", 0)) if isinstance(first.config, dict) else 0
    split_file = find_split_file(resolve_checkpoint_dir(checkpoints[0]))
    with tempfile.TemporaryDirectory() as tmp:
        if split_file is not None:  # copied: building must not rewrite the members' run folder
            shutil.copy(split_file, tmp)
        return build_data(cfg, seed=seed, run_dir=tmp, reuse_split=True)


def search_ensemble_weights(checkpoints: Sequence[str], data=None, *, vary: int = 0,
                            grid: Sequence[float] = DEFAULT_GRID, split: str = "val", combine: str = "logits",
                            image_size: int | None = None, device: str = "auto",
                            batch_size: int = 128) -> EnsembleSearchResult:
    """Grid-search one member's weight (others share the rest) and report every candidate's OA.

    ``data``: a ``DataBundle``, a data folder path, or None (the path recorded in the first member's
    manifest). Without a bundle, the members' saved ``split.json`` (found above the checkpoint) is
    reused; the split must match the hash recorded in every member's manifest, so the images scored
    were never trained on. Each member sees the images with its own normalisation. Member logits are
    computed once; each candidate only re-weights them.
    """
    from compress.data.bundle import DataBundle
    from compress.engine.checkpoint import load_checkpoint, read_manifest
    from compress.engine.device import resolve_device
    from compress.engine.evaluate import predict
    from compress.errors import CheckpointError, DataError

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
    bundle = data if isinstance(data, DataBundle) else _member_data(manifests, checkpoints, data, image_size)
    if not isinstance(data, DataBundle) and hashes and bundle.split.hash not in hashes:
        raise DataError(f"The rebuilt split ({bundle.split.hash}) differs from the members' ({hashes.pop()}); "
                        "pass the members' data folder with --data.")
    if bundle.class_names != names:
        raise DataError(f"The data has classes {bundle.class_names[:5]}..., the members {names[:5]}....")
    dataset = bundle.val if split == "val" else bundle.test
    if dataset is None or len(dataset) == 0:
        raise DataError("The members' run has no validation images (val_fraction 0); use --split test.")
    dev = resolve_device(device)
    outputs, labels = [], None
    for c, m in zip(checkpoints, manifests):
        model = load_checkpoint(c, device=dev).model
        wrapped = nn.Sequential(_Renormalize(bundle.mean, bundle.std, m.mean, m.std), model).to(dev)
        logits, labels = predict(wrapped, dataset, dev, batch_size=batch_size)
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
                                split=split, images=int(len(y)), combine=combine, split_hash=bundle.split.hash,
                                candidates=cands, best=best)
