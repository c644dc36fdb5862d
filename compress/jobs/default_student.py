"""The student ``compress distill`` builds when none is named: the teacher itself, pruned to a budget.

A from-scratch zoo network distilled on a few hundred images loses to its own no-teacher baseline more
often than not (issue 28: −5.5 pt on a 7-class aerial set, at chance for 4 of 10 epochs), while the
teacher pruned to half its MACs and recovered by distillation stays within about a point of it: it
starts from the teacher's features instead of from noise. So the default student is the teacher
pruned to ``macs`` (share of its MACs, 0.5 by default), its weights inherited: whole residual blocks with an
identity shortcut first (least contribution first), channels only for what blocks cannot give — on AID
(30 classes, 20 %, 96 px, Lite0) the block-pruned student at 45 % of the MACs scored 84.6 % against 79.1 %
for the width-pruned one at 50 % and 83.9 % for the teacher (bench/history/diary.md §Issue 28) — or, for a
device profile (``--target``), the best of the candidates :mod:`compress.jobs.student_search` builds
(width, depth, both, lower resolution); the baseline of the same run is that pruned network fine-tuned without
the teacher, so the table compares like with like. ``--student NAME`` still trains a zoo network.
"""
from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from compress.errors import UserInputError

PRUNED_DIR = "pruned"  # inside the distill run folder
# how a MACs budget is met: channels, whole identity-shortcut blocks, or blocks as far as they go then channels
MODES = ("width", "depth", "depth+width")


@dataclass(frozen=True)
class StudentBudget:
    """How small the default (pruned-teacher) student is: a share of the teacher's MACs, or — with a device
    profile ``target`` (``NAME@MODE`` for a power mode) — a latency (ms per image, batch 1, ESTIMATED in
    ``precision``; half the teacher's when not given) met by the best of several candidates
    (:mod:`compress.jobs.student_search`)."""

    macs: float = 0.5
    latency_ms: float | None = None
    target: str | None = None
    precision: str = "fp16"  # of the latency estimate
    remote: str | None = None  # [user@]host[:port] of the target device: the search measures there
    mode: str = "depth+width"  # how the MACs budget is met: width (channels) | depth (blocks) | depth+width

    def __post_init__(self) -> None:
        if not 0 < self.macs < 1:
            raise UserInputError(f"--budget is the share of the teacher's MACs the student keeps, in (0, 1) (e.g. "
                                 f"0.5); got {self.macs}.")
        if self.mode not in MODES:
            raise UserInputError(f"--prune-mode '{self.mode}' is not one of {', '.join(MODES)}.")
        if self.mode != StudentBudget.mode and self.target:
            raise UserInputError("--prune-mode sizes the student for --budget; with --target the search tries width, "
                                 "depth and both itself: drop one of them.")
        if self.latency_ms is not None and (self.latency_ms <= 0 or not self.target):
            raise UserInputError("--latency-ms needs a positive budget and --target DEVICE (see "
                                 "`compress profile --list-devices`).")
        if self.precision not in ("fp16", "int8"):
            raise UserInputError(f"--precision is the precision the student will run in on --target: fp16 or int8; "
                                 f"got '{self.precision}'.")
        if self.precision != "fp16" and not self.target:
            raise UserInputError("--precision is the precision of the student on a --target device; add --target "
                                 "DEVICE (or drop --precision).")
        if self.remote is not None and not self.target:
            raise UserInputError("--remote measures the student search's candidates on the device: add --target "
                                 "DEVICE (the profile of that device), or drop --remote.")
        if self.target:
            from compress.jobs.candidates import Estimator
            from compress.jobs.candidates import target_spec

            Estimator(*target_spec(self.target))  # an unknown device or power mode is one line, now
        if self.remote is not None:
            from compress.jobs.device_measure import check_remote

            check_remote(self.remote)

    def device_budget(self, model: nn.Module, shape: tuple[int, ...], folder: Path | None = None,
                      architecture: str | None = None):
        """The ``DeviceBudget`` of the search: ``latency_ms``, or half ``model``'s (the teacher's) latency —
        measured on ``remote`` (ONNX files under ``folder``; the weights do not matter, so an untrained
        teacher will do), else estimated."""
        from compress.jobs.candidates import DeviceBudget
        from compress.jobs.candidates import target_spec
        from compress.jobs.student_search import teacher_latency
        from compress.models.factory import canonical_architecture

        name, mode = target_spec(self.target or "")
        measured = None
        if self.remote:
            from compress.jobs.device_measure import DeviceMeter

            measured = DeviceMeter(self.remote, self.precision, Path(folder or "."))(model, shape, "teacher").ms
        budget = DeviceBudget(name, self.latency_ms or 1.0, mode, self.precision, self.remote, measured,
                              architecture and canonical_architecture(architecture))
        if self.latency_ms is None:
            own = measured if measured is not None else teacher_latency(model, shape, budget)
            budget = dataclasses.replace(budget, latency_ms=round(own / 2, 4))
        return budget

    def prune_config(self, checkpoint: str, out: str):
        """The ``compress prune`` job the MACs budget means for ``checkpoint`` (a ``target`` searches instead)."""
        from compress.jobs.prune_budget import PruneJobConfig
        from compress.models.prune import PruneConfig

        mode = "width" if self.mode == "depth+width" else self.mode  # the composite's last cut
        return PruneJobConfig(checkpoint=checkpoint, out=out, macs=self.macs, prune=PruneConfig(mode=mode))

    def describe(self) -> str:
        if self.target:
            ms = f"--latency-ms {self.latency_ms:g}" if self.latency_ms is not None else "half the teacher's latency"
            return f"{ms} --target {self.target} ({self.precision})"
        default = StudentBudget.mode
        mode = "" if self.mode == default else f" --prune-mode {self.mode}"
        return f"--budget {self.macs:g}{mode}" + (" (the default)" if (self.macs, self.mode) == (0.5, default) else "")


def check_reachable(budget: StudentBudget, model: nn.Module, shape: tuple[int, ...], architecture: str) -> None:
    """Prune a copy of ``model`` (e.g. the untrained teacher architecture) to ``budget`` and raise the prune
    job's one-line error when it cannot be met — before any training starts. Uniform width pruning gives
    the same structure whatever the weights, so an untrained copy answers for the trained teacher."""
    import copy

    try:
        cut_to_budget(copy.deepcopy(model).eval(), shape, budget, architecture, None)
    except UserInputError as exc:
        raise UserInputError(f"the default student (the teacher pruned to {budget.describe()}): {exc} Or name a "
                             "zoo student with --student NAME.") from None


def cut_to_budget(model: nn.Module, shape: tuple[int, ...], budget: StudentBudget, architecture: str,
                  calib: list | None) -> tuple[dict, dict, str, str]:
    """Prune ``model`` in place to ``budget.macs`` of its MACs the budget's way: ``(before, after, label, how)``
    (``{"params", "macs"}`` each; ``how`` the cuts made: width, depth or depth+width). ``depth+width`` removes
    blocks as far as the budget or the blocks go (the least-contributing first, on ``calib``), then channels."""
    import dataclasses as dc

    from compress.jobs.prune_budget import Budget, prune_to_budget
    from compress.models.prune import PruneConfig

    cfg = budget.prune_config("", "")
    if budget.mode != "depth+width":
        _, before, after, label, _ = prune_to_budget(model, shape, cfg, architecture, calib)
        return before, after, label, budget.mode
    before = Budget(cfg, shape).measure(model)
    try:
        _, _, after, label, _ = prune_to_budget(model, shape, dc.replace(cfg, prune=PruneConfig(mode="depth")),
                                                architecture, calib)
        return before, after, label, "depth"
    except UserInputError:
        pass  # the blocks alone do not reach the budget (or there are none): the model keeps what they removed
    now = Budget(cfg, shape).measure(model)["macs"]
    _, _, after, _, _ = prune_to_budget(model, shape, dc.replace(cfg, macs=budget.macs * before["macs"] / now),
                                        architecture, calib)
    cut = "depth+width" if now < before["macs"] else "width"  # no removable block: channels only
    return before, after, f"MACs ≤ {budget.macs:g} × {before['macs'] / 1e6:.2f} M", cut


def teacher_to_prune(paths: tuple[str, ...], weights: tuple[float, ...]) -> str:
    """The member of a teacher ensemble the student is pruned from: the largest weight (first on a tie)."""
    if not weights:
        return paths[0]
    return paths[max(range(len(paths)), key=lambda i: (weights[i], -i))]


def pruned_student(budget: StudentBudget, teacher: str, run: Path, resume: bool) -> tuple[str, str]:
    """Prune ``teacher`` (checkpoint) into ``run/pruned``: ``(checkpoint, what was chosen and why)``.
    On ``--resume`` a pruned checkpoint already there is used as it is. Under ``torchrun`` rank 0 prunes
    and the others wait, then all read the same file."""
    from compress.checkpoint import read_manifest, save_checkpoint
    from compress.io import read_json, write_json_atomic
    from compress.jobs.prune_budget import calibration_batches, pruned_manifest
    from compress.models.restore import load_checkpoint
    from compress.models.prune import PruneConfig
    from compress.parallel import barrier, is_main

    folder = run / PRUNED_DIR
    record = folder / "prune.json"
    if is_main() and not (resume and record.is_file()):
        if folder.exists():  # a pruning cut short: nothing in it is worth keeping
            shutil.rmtree(folder)
        ckpt = load_checkpoint(teacher)
        man = ckpt.manifest
        shape = (1, man.in_chans, man.image_size, man.image_size)
        calib = calibration_batches(ckpt, PruneConfig().calib_batches) if "depth" in budget.mode else None
        before, after, label, how = cut_to_budget(ckpt.model, shape, budget, man.architecture, calib)
        save_checkpoint(folder / "checkpoints" / "best", ckpt.model,
                        pruned_manifest(man, ckpt.model, str(ckpt.path), label, after))
        write_json_atomic(record, {"teacher": str(ckpt.path), "budget": label, "before": before, "after": after,
                                   "how": how})
    barrier()
    done = read_json(record)
    ckpt_dir = folder / "checkpoints" / "best"
    return str(ckpt_dir), why_line(budget, read_manifest(ckpt_dir).architecture, done["before"], done["after"],
                                   done.get("how", "width"))  # a record from before depth existed: width


def why_line(budget: StudentBudget, architecture: str, before: dict, after: dict, how: str) -> str:
    """One line for the table: what the student is, how it was sized, and how to get another."""
    how = {"width": "in width", "depth": "in depth (identity-shortcut blocks removed)",
           "depth+width": "in depth (identity-shortcut blocks removed) and, past what blocks give, in width"}[how]
    return (f"student: the teacher ({architecture}) pruned {how} to {after['macs'] / before['macs']:.0%} of its "
            f"MACs ({after['macs'] / 1e6:.2f} M of {before['macs'] / 1e6:.2f} M; {after['params'] / 1e6:.3f} M params"
            f") for {budget.describe()}, its weights inherited and recovered by distillation from the teacher; "
            "the baseline is the same pruned network fine-tuned without it. --student NAME trains a zoo network "
            "instead.")

