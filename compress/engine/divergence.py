"""Telling a diverging run from a slow one, so it stops with one line instead of exiting 0 with a broken model.

A run has diverged when (a) a loss term is not finite, (b) an epoch's mean training loss is more
than ``loss_factor`` times the first epoch's and ``min_rise`` nats above it (a run that learns lowers its
loss; warm-up ramps such as DKD's stay far below ×2), or (c) the validation score fell back to about chance
(``≤ collapse_factor / classes``) after it had been well above it (``≥ reached_factor / classes``),
in an earlier epoch or, for a run that starts from trained weights, before the first (``seed``), by more
than three standard errors of a difference of two scores on ``val_images`` images: on 20 images a
from-scratch teacher went from 8 right to 3 in its fifth (warm-up) step and was stopped as diverged.
A validation collapse counts only when the epoch's training accuracy (where the method reports one) is not
well above chance too (``< reached_factor / classes``): from scratch on 31 validation images, PSKD's score fell
from 54.8 % to 9.7 % in one epoch while its training accuracy stayed at 46.9 % (AID, a 10-class part at 10 %),
an evaluation-mode wobble (BatchNorm statistics of a student still moving fast, a tiny split) like its drop to
12.9 % in epoch 21, back at 38.7 % two epochs later; the run was stopped and the user left with an error. The
best checkpoint is what a run keeps, so going on costs only time; a real collapse (a loss that drives every
image to one class) takes the training accuracy down with it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from compress.errors import CompressError


class TrainingDiverged(CompressError, RuntimeError):
    """Training was stopped because the loss exploded or accuracy collapsed; the best checkpoint is kept."""


@dataclass
class DivergenceMonitor:
    """Feed it each epoch's mean training loss and validation score; ``check`` returns why it diverged, or None."""

    classes: int
    loss_factor: float = 2.0
    # a rise must also exceed this many nats: a fine-tune that starts near zero loss (QAD of a fitted student,
    # CE 0.005) doubles it by noise alone — on one thread the quick start's QAD rose 0.005 → 0.016 and stopped
    min_rise: float = 0.1
    collapse_factor: float = 1.5
    reached_factor: float = 3.0
    val_images: int = 0  # validation split size; 0 = unknown (no noise margin on a collapse)
    first_loss: float | None = None
    best_score: float | None = None
    history: list[tuple[float, float | None]] = field(default_factory=list)

    def check(self, epoch: int, train_loss: float, val_score: float | None,
              train_acc: float | None = None) -> str | None:
        """``epoch`` is 1-based; ``train_acc`` the epoch's training accuracy (0–1) where the method reports one.
        A reason string when the run diverged at this epoch."""
        import math

        if not math.isfinite(train_loss):
            return f"the training loss became {train_loss} in epoch {epoch}"
        if self.first_loss is None:
            self.first_loss = train_loss
        self.history.append((train_loss, val_score))
        if epoch >= 2 and self.first_loss > 0 and train_loss > self.loss_factor * self.first_loss \
                and train_loss - self.first_loss > self.min_rise:
            return (f"the training loss rose from {self.first_loss:.4g} (epoch 1) to {train_loss:.4g} "
                    f"(epoch {epoch})")
        if val_score is not None:
            chance = 1.0 / max(self.classes, 1)
            reached = self.best_score is not None and self.best_score >= min(1.0, self.reached_factor * chance)
            p = self.best_score or 0.0
            noise = 3 * (2 * p * (1 - p) / self.val_images) ** 0.5 if self.val_images > 0 else 0.0
            training_held = train_acc is not None and train_acc >= min(1.0, self.reached_factor * chance)
            if reached and val_score <= self.collapse_factor * chance and self.best_score - val_score > noise \
                    and not training_held:
                return (f"the validation score collapsed to {100 * val_score:.2f} % (chance {100 * chance:.2f} %) "
                        f"in epoch {epoch} after reaching {100 * self.best_score:.2f} %")
            self.best_score = val_score if self.best_score is None else max(self.best_score, val_score)
        return None

    def seed(self, start_score: float | None) -> None:
        """The validation score before training (fine-tuning trained weights): a collapse from it counts."""
        if start_score is not None:
            self.best_score = start_score if self.best_score is None else max(self.best_score, start_score)

    def restore(self, history: list[dict]) -> None:
        """Rebuild the monitor from a resumed run's history rows."""
        for row in history:
            self.check(int(row["epoch"]), monitored_loss(row), row.get("val_score"), row.get("train_acc"))


def monitored_loss(row: dict) -> float:
    """The loss the rise rule watches in an epoch's history row: the supervised CE term where the method
    has one, else the total. A method's own ramp of its distillation weight (DKD's 20-epoch warm-up, run
    in full once automatic epochs reach 75) raised the total 2.4× on AID and stopped healthy runs. A total
    that is not finite is always reported."""
    import math

    total = float(row.get("train_loss", 0.0))
    if not math.isfinite(total) or row.get("train_ce") is None:
        return total
    return float(row["train_ce"])


def diverged_message(reason: str, role: str, lr: float, best: str | None) -> str:
    keep = f"the best checkpoint so far is kept in {best}" if best else "no checkpoint was good enough to keep"
    return (f"Training diverged ({role} stage): {reason}; {keep}. Try a lower --lr (e.g. {lr / 3:.3g}) and/or "
            "--grad-clip 5, then start a new run (a new --out).")
