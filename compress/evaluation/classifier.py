"""Prediction and classification evaluation of a model on a data set."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from compress.hardware import autocast


def sharded(dataset: Dataset) -> Dataset:
    """This rank's contiguous part of ``dataset`` under data-parallel training (the whole set otherwise)."""
    from torch.utils.data import Subset

    from compress.parallel import active, shard_indices

    if not active():
        return dataset
    part = shard_indices(len(dataset))
    return Subset(dataset, range(part.start, part.stop))


def gathered(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each array concatenated over the ranks' shards, in rank order (the arrays themselves single-process)."""
    from compress.parallel import gather_objects

    parts = gather_objects(arrays)
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(arrays)))


@torch.no_grad()
def predict(model: torch.nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 256,
            workers: int = 0, amp: torch.dtype | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``[N, C]`` (float32) and labels ``[N]`` over ``dataset`` in order (each rank scores its shard)."""
    was_training = model.training
    model.eval()
    loader = DataLoader(sharded(dataset), batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda")
    outs, labels = [], []
    with torch.inference_mode():
        for x, y in loader:
            with autocast(device, amp):
                out = model(x.to(device, non_blocking=True))
            outs.append(out.float().cpu())
            labels.append(y)
    model.train(was_training)
    return gathered(torch.cat(outs).numpy(), torch.cat(labels).numpy())


def evaluate_classifier(model: torch.nn.Module, dataset: Dataset, class_names: list[str], device: torch.device,
                        batch_size: int = 256, workers: int = 0, amp: torch.dtype | None = None):
    """``ClassificationMetrics`` (OA, per-class accuracy, macro-F1, kappa, confusion) of ``model``."""
    from compress.metrics.classification import classification_report

    logits, labels = predict(model, dataset, device, batch_size, workers, amp)
    return classification_report(labels, logits.argmax(1), class_names)


def write_classification_outputs(directory: str | Path, metrics, class_names: list[str], prefix: str = "") -> None:
    """Confusion matrix as CSV and PNG next to ``metrics.json``."""
    from compress.metrics.classification import plot_confusion_png, write_confusion_csv

    directory = Path(directory)
    cm = np.asarray(metrics.confusion)
    write_confusion_csv(directory / f"{prefix}confusion.csv", cm, class_names)
    plot_confusion_png(directory / f"{prefix}confusion.png", cm, class_names)
