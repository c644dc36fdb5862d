"""What a run logs beside ``history.csv``: TensorBoard event files (``--log tensorboard``) and the
``training_curves.png`` every run writes (loss terms, train accuracy and validation score per epoch)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from compress.errors import UserInputError

LOGGERS = ("none", "tensorboard")


def check_logger(kind: str) -> None:
    """Fail before training when the logger is unknown or its package is missing."""
    if kind not in LOGGERS:
        raise UserInputError(f"--log must be one of {', '.join(LOGGERS)}, got '{kind}'.")
    if kind == "tensorboard":
        try:
            import tensorboard  # noqa: F401  (SummaryWriter needs the package, not only torch)
        except ImportError:
            raise UserInputError("--log tensorboard needs the tensorboard package: pip install tensorboard "
                                 "(or drop --log).") from None


class RunLogger:
    """Per-epoch scalars to TensorBoard under ``run_dir/tensorboard`` (a no-op for ``none``)."""

    def __init__(self, run_dir: str | Path, kind: str = "none") -> None:
        check_logger(kind)
        self.writer = None
        if kind == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def epoch(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        step = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and value is not None:
                self.writer.add_scalar(key.replace("train_", "train/").replace("val_", "val/"), float(value), step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def plot_curves(run_dir: str | Path, history: list[dict[str, Any]]) -> Path | None:
    """``training_curves.png``: loss terms (left) and accuracy / validation score in % (right) per epoch."""
    from compress.metrics.plotting import new_figure, save_figure

    if not history:
        return None
    epochs = [int(r["epoch"]) for r in history]
    fig = new_figure(10, 4)
    loss_ax, score_ax = fig.subplots(1, 2)
    terms = [k for k in history[0] if k.startswith("train_") and k != "train_acc" and
             all(isinstance(r.get(k), (int, float)) for r in history)]
    for k in terms:
        loss_ax.plot(epochs, [r[k] for r in history], marker="o", ms=3,
                     label="total" if k == "train_loss" else k.removeprefix("train_"))
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss (epoch mean)")
    loss_ax.legend(fontsize=8)
    for key, label in (("train_acc", "train accuracy"), ("val_score", "validation score")):
        pts = [(e, r[key]) for e, r in zip(epochs, history) if isinstance(r.get(key), (int, float))]
        if pts:
            score_ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", ms=3, label=label)
    score_ax.set_xlabel("epoch")
    score_ax.set_ylabel("%")
    score_ax.legend(fontsize=8)
    fig.suptitle(f"{Path(run_dir).name}: {len(history)} epoch(s)")
    return save_figure(fig, Path(run_dir) / "training_curves.png")
