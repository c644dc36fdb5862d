"""``compress prune``: a pruned student that inherits the teacher's weights, cut to a budget of MACs,
parameters, or latency on a device profile (estimated) or on this CPU (measured, ``--measure``),
and optionally recovered by distillation from the unpruned model (``--recover``).

The result is a run folder whose ``checkpoints/best`` is a normal checkpoint: its manifest records the
pruned structure (``model_kwargs.pruned``), so every command (evaluate, export, profile, distill
``--teacher``/``--student``) rebuilds it from the zoo name and loads it from safetensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.engine.progress import ProgressSink
from compress.io import to_jsonable, write_json_atomic
from compress.jobs.prune_budget import PruneJobConfig, calibration_batches, prune_to_budget, pruned_manifest
from compress.jobs.rundir import open_run
from compress.models.prune import PruneStep


@dataclass
class PruneResult:
    run_dir: str
    checkpoint: str
    budget: str
    steps: list[PruneStep]
    before: dict[str, Any]
    after: dict[str, Any]
    margin: float  # how far under the budget the result is (same unit as the budget)
    test_oa_before_recovery: float | None = None
    recovered: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def run_prune(cfg: PruneJobConfig, progress: ProgressSink | None = None) -> PruneResult:
    """Prune ``cfg.checkpoint`` to the budget into ``cfg.out``; with ``recover`` distil it from the original."""
    from compress.checkpoint import save_checkpoint
    from compress.data.split import find_split_file, load_split, save_split
    from compress.models.restore import load_checkpoint

    ckpt = load_checkpoint(cfg.checkpoint)
    man = ckpt.manifest
    shape = (1, man.in_chans, man.image_size, man.image_size)
    model = ckpt.model
    resolved = to_jsonable(cfg)
    with open_run(cfg.out, "prune", cfg.resume, resolved, device=cfg.train.device) as run:
        # Taylor importance and depth pruning (each block's contribution) look at real training images
        calib = calibration_batches(ckpt, cfg.prune.calib_batches) if cfg.prune.importance == "taylor" or \
            cfg.prune.mode == "depth" else None
        steps, base, final, label, margin = prune_to_budget(model, shape, cfg, man.architecture, calib)
        pruned_man = pruned_manifest(man, model, str(ckpt.path), label, final)
        split = find_split_file(ckpt.path)
        if split is not None:
            save_split(load_split(split), run)
        out_ckpt = save_checkpoint(run / "checkpoints" / "best", model, pruned_man)
        result = PruneResult(run_dir=str(run), checkpoint=str(out_ckpt), budget=label, steps=steps,
                             before=base, after=final, margin=margin)
        if split is not None:
            from compress.evaluation.saved_model import evaluate_checkpoint

            result.test_oa_before_recovery = evaluate_checkpoint(out_ckpt, out=run / "evaluation").metrics["oa"]
        if cfg.recover:
            result.recovered = _recover(cfg, ckpt, out_ckpt, run, progress)
        write_json_atomic(run / "prune.json", result.to_dict())
    return result


def _recover(cfg: PruneJobConfig, ckpt, pruned: Path, run: Path, progress) -> dict[str, Any]:
    """Distil the pruned student from the unpruned checkpoint, on the checkpoint's own data and split."""
    from compress.data.bundle import DataConfig
    from compress.jobs.train_distill import JobConfig, run_distill
    from compress.jobs.teacher_data import recorded_data

    data = recorded_data(ckpt.path, {"image_size": ckpt.manifest.image_size}) or DataConfig(
        image_size=ckpt.manifest.image_size)
    job = JobConfig(data=data, train=cfg.train, student=str(pruned), teacher=(str(ckpt.path),), method=cfg.method,
                    method_params=cfg.method_params, baseline=cfg.baseline, out=str(run / "recover"), resume=cfg.resume)
    return run_distill(job, progress=progress).to_dict()
