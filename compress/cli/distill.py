"""``compress distill``: teacher → baseline student → distilled student, side by side."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from compress.cli import jobopts as o
from compress.cli.common import cli_errors, print_json


def register(app: typer.Typer) -> None:
    @app.command("distill")
    def distill(
        data: Optional[str] = o.Data, train_ratio: Optional[float] = o.TrainRatio,
        val_fraction: Optional[float] = o.ValFraction, val_dir: Optional[str] = o.ValDir,
        test_dir: Optional[str] = o.TestDir, image_size: Optional[int] = o.ImageSize,
        student: Optional[str] = o.Student,
        teacher: Optional[List[str]] = typer.Option(None, "--teacher", help="Teacher checkpoint (repeat for a "
                                                    "weighted ensemble); none → one is trained first."),
        teacher_weight: Optional[List[float]] = typer.Option(None, "--teacher-weight",
                                                             help="Ensemble weight per --teacher, in order."),
        teacher_arch: Optional[str] = typer.Option(None, "--teacher-arch", help="Architecture of a teacher trained here."),
        teacher_epochs: Optional[int] = typer.Option(None, "--teacher-epochs", help="Epochs for that teacher."),
        teacher_init_weights: Optional[str] = typer.Option(None, "--teacher-init-weights",
                                                           help="Initial weights for that teacher (file or package:NAME)."),
        method: Optional[str] = o.Method, method_param: Optional[List[str]] = o.MethodParam,
        epochs: Optional[int] = o.Epochs, batch_size: Optional[int] = o.BatchSize, lr: Optional[float] = o.Lr,
        optimizer: Optional[str] = o.Optimizer, schedule: Optional[str] = o.Schedule, seed: Optional[int] = o.Seed,
        device: Optional[str] = o.Device, amp: Optional[str] = o.Amp, workers: Optional[int] = o.Workers,
        label_smoothing: Optional[float] = o.LabelSmoothing, grad_clip: Optional[float] = o.GradClip,
        warmup_epochs: Optional[float] = o.WarmupEpochs,
        unlabeled: Optional[str] = typer.Option(None, "--unlabeled", help="Folder of unlabelled images "
                                                "(method kd-hr: teacher KD + high-rankness term on them)."),
        no_baseline: bool = typer.Option(False, "--no-baseline", help="Skip the no-teacher baseline student."),
        pretrained: bool = o.Pretrained, weights: Optional[str] = o.Weights,
        out: Optional[str] = o.Out, resume: bool = o.Resume, config: Optional[Path] = o.Config,
        json_out: bool = o.Json,
    ) -> None:
        """Distil a compact student from a teacher (trained first if not given) and compare with a baseline."""
        from compress.cli.progress import RichProgress
        from compress.cli.render import render_job
        from compress.engine.jobs import run_distill

        with cli_errors():
            flags = dict(data=data, train_ratio=train_ratio, val_fraction=val_fraction, val_dir=val_dir,
                         test_dir=test_dir, image_size=image_size, student=student,
                         teacher=teacher or None, teacher_weights=teacher_weight or None, teacher_arch=teacher_arch,
                         teacher_epochs=teacher_epochs, teacher_init_weights=teacher_init_weights, method=method,
                         epochs=epochs, batch_size=batch_size, lr=lr,
                         optimizer=optimizer, schedule=schedule, seed=seed, device=device, amp=amp, workers=workers,
                         label_smoothing=label_smoothing, grad_clip=grad_clip, warmup_epochs=warmup_epochs,
                         baseline=False if no_baseline else None, pretrained=pretrained or None,
                         weights=weights, unlabeled=unlabeled, out=out, resume=resume or None)
            job = o.build_job(config, flags, o.parse_params(method_param))
            with RichProgress(enabled=not json_out) as progress:
                result = run_distill(job, progress=progress)
            if json_out:
                print_json(result.to_dict())
            else:
                render_job(result, f"compress distill — method {result.method}")
