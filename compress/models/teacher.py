"""Teachers as models: checkpoints checked against the data, fed the batch as they were trained
(the input adapter), and several of them as ERKT-Net's weighted ensemble."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from compress.errors import CheckpointError


class InputAdapter(nn.Module):
    """Feeds a teacher the batch as it was trained: re-normalised and resized when the run's differ.

    ``x_teacher = (x·std_run + mean_run − mean_t) / std_t`` is exact, so ensemble members trained with
    other preprocessing still see the images they expect.
    """

    def __init__(self, model: nn.Module, run_mean, run_std, mean, std, size: int | None) -> None:
        super().__init__()
        self.model, self.size = model, size
        shape = (1, -1, 1, 1)
        self.register_buffer("scale", (torch.tensor(run_std) / torch.tensor(std)).view(shape))
        self.register_buffer("shift", ((torch.tensor(run_mean) - torch.tensor(mean)) / torch.tensor(std)).view(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.scale + self.shift
        if self.size is not None and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.model(x)


def adapt_input(model: nn.Module, manifest, mean: Sequence[float], std: Sequence[float], image_size: int) -> nn.Module:
    """``model`` itself when the run preprocesses as its manifest says, else wrapped in an ``InputAdapter``."""
    same_norm = np.allclose(manifest.mean, mean, atol=1e-6) and np.allclose(manifest.std, std, atol=1e-6)
    same_size = manifest.image_size == image_size
    if same_norm and same_size:
        return model
    return InputAdapter(model, list(mean), list(std), manifest.mean, manifest.std,
                        None if same_size else manifest.image_size).eval()


def load_teacher(paths: Sequence[str], weights: Sequence[float], *, class_names: Sequence[str], in_chans: int,
                 mean: Sequence[float], std: Sequence[float], image_size: int) -> nn.Module:
    """Teacher checkpoint(s) checked against the data's classes and bands; several form a weighted ensemble."""
    from compress.models.restore import load_checkpoint
    from compress.models.ensemble import WeightedEnsemble

    models = []
    for p in paths:
        ck = load_checkpoint(p)
        if list(ck.manifest.class_names) != list(class_names):
            raise CheckpointError(f"Teacher '{p}' was trained on classes {list(ck.manifest.class_names)[:5]}... but "
                                  f"the data has {list(class_names)[:5]}...; use a teacher trained on these classes.")
        if ck.manifest.in_chans != in_chans:
            raise CheckpointError(f"Teacher '{p}' takes {ck.manifest.in_chans} band(s), the data has {in_chans}.")
        models.append(adapt_input(ck.model, ck.manifest, mean, std, image_size))
    if len(models) == 1 and not weights:
        return models[0]
    return WeightedEnsemble(models, list(weights) if weights else None)
