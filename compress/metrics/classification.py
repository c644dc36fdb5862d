"""Scene-classification metrics: OA, per-class accuracy, macro-F1, Cohen's kappa, confusion matrix.

Conventions: the confusion matrix has rows = true class, columns = predicted class. Per-class
accuracy is the recall of that class (``None`` when the class never occurs in ``y_true``).
Macro-F1 averages F1 over the classes that occur in ``y_true`` or ``y_pred`` (as scikit-learn's
default), so evaluating on a subset of classes is not dragged down by classes that are absent.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from compress.errors import UserInputError
from compress.io import atomic_path, to_jsonable
from compress.metrics.arrays import as_int_labels, check_same_length
from compress.metrics.plotting import new_figure, save_figure

__all__ = [
    "ClassificationMetrics",
    "classification_report",
    "confusion_matrix",
    "write_confusion_csv",
    "plot_confusion_png",
]


@dataclass(frozen=True)
class ClassificationMetrics:
    """All ratios in [0, 1] (kappa in [−1, 1]); ``None`` where undefined."""

    n: int
    oa: float
    per_class_accuracy: dict[str, float | None]
    per_class_f1: dict[str, float | None]
    macro_f1: float
    kappa: float | None
    confusion: list[list[int]]
    class_names: list[str]

    def to_dict(self) -> dict:
        return to_jsonable(self)


def _check_names(class_names: Sequence[str]) -> list[str]:
    names = [str(c) for c in class_names]
    if not names:
        raise UserInputError("class_names is empty; pass one name per class index.")
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise UserInputError(f"class_names has duplicates ({', '.join(dup)}); each class needs its own name.")
    return names


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """Counts ``[C, C]`` (int64): entry (i, j) = samples of true class i predicted as j."""
    t = as_int_labels(y_true, "y_true", num_classes)
    p = as_int_labels(y_pred, "y_pred", num_classes)
    check_same_length(t, p, "y_true", "y_pred")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _cohen_kappa(cm: np.ndarray) -> float | None:
    n = cm.sum()
    po = np.trace(cm) / n
    pe = float((cm.sum(1) * cm.sum(0)).sum()) / float(n * n)
    if np.isclose(pe, 1.0):  # one class only, in truth and prediction: chance agreement is total
        return None
    return float((po - pe) / (1.0 - pe))


def classification_report(y_true: Any, y_pred: Any, class_names: Sequence[str]) -> ClassificationMetrics:
    """Score predicted class indices ``[N]`` against true ones ``[N]`` (numpy or torch, ints in [0, C))."""
    names = _check_names(class_names)
    c = len(names)
    cm = confusion_matrix(y_true, y_pred, c)
    n = int(cm.sum())
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(1)  # true count per class
    predicted = cm.sum(0)
    per_acc: dict[str, float | None] = {}
    per_f1: dict[str, float | None] = {}
    f1_present = []
    for i, name in enumerate(names):
        per_acc[name] = float(tp[i] / support[i]) if support[i] else None
        if support[i] == 0 and predicted[i] == 0:
            per_f1[name] = None
            continue
        # F1 = 2TP / (2TP + FP + FN); the denominator is > 0 whenever the class occurs at all.
        f1 = float(2 * tp[i] / (support[i] + predicted[i]))
        per_f1[name] = f1
        f1_present.append(f1)
    return ClassificationMetrics(
        n=n,
        oa=float(tp.sum() / n),
        per_class_accuracy=per_acc,
        per_class_f1=per_f1,
        macro_f1=float(np.mean(f1_present)),
        kappa=_cohen_kappa(cm),
        confusion=cm.tolist(),
        class_names=names,
    )


def _as_cm(cm: Any, class_names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    names = _check_names(class_names)
    arr = np.asarray(cm.confusion if isinstance(cm, ClassificationMetrics) else cm)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] != len(names):
        raise UserInputError(
            f"the confusion matrix must be square with one row per class name ({len(names)}); got shape {arr.shape}."
        )
    if np.any(arr < 0):
        raise UserInputError("the confusion matrix holds negative counts; pass the counts from classification_report.")
    return arr, names


def write_confusion_csv(path: str | os.PathLike, cm: Any, class_names: Sequence[str]) -> Path:
    """CSV: header ``true\\pred, <names...>``, then one row per true class (atomic write)."""
    arr, names = _as_cm(cm, class_names)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["true\\pred", *names])
            for name, row in zip(names, arr.tolist()):
                w.writerow([name, *row])
    return Path(path)


def plot_confusion_png(
    path: str | os.PathLike, cm: Any, class_names: Sequence[str], normalize: bool = True, title: str | None = None
) -> Path:
    """Heat map of the confusion matrix (rows = true). ``normalize`` divides each row by its total.

    The figure grows with the class count (~0.35 in per class) so 30+ class names stay legible; cell
    values are printed up to 40 classes.
    """
    arr, names = _as_cm(cm, class_names)
    arr = arr.astype(np.float64)
    if normalize:
        rows = arr.sum(1, keepdims=True)
        arr = np.divide(arr, rows, out=np.zeros_like(arr), where=rows > 0)
    c = len(names)
    side = max(4.0, 0.35 * c + 2.0)
    font = 8 if c <= 20 else 7
    fig = new_figure(side + 1.0, side)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(arr, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(1.0, arr.max()))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(c), labels=names, rotation=90, fontsize=font)
    ax.set_yticks(range(c), labels=names, fontsize=font)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.set_title(title or ("Confusion matrix (row-normalised)" if normalize else "Confusion matrix"))
    if c <= 40:
        top = arr.max() if arr.size else 0.0
        for i in range(c):
            for j in range(c):
                v = arr[i, j]
                if v == 0:
                    continue
                text = f"{v:.2f}".lstrip("0") if normalize and v < 1 else (f"{v:.0f}" if not normalize else "1")
                color = "white" if v > 0.6 * top else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=font - 1 if c <= 20 else 6, color=color)
    return save_figure(fig, path)
