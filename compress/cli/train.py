"""``compress train``: train one model (a teacher, an ensemble member, a baseline) without a teacher."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from compress.cli import jobopts as o
from compress.cli.common import cli_errors, print_json


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        data: Optional[str] = o.Data, train_ratio: Optional[float] = o.TrainRatio,
        val_fraction: Optional[float] = o.ValFraction, val_dir: Optional[str] = o.ValDir,
        test_dir: Optional[str] = o.TestDir, image_size: Optional[int] = o.ImageSize,
        model: Optional[str] = typer.Option(None, "--model", "--student", help="Model-zoo name to train."),
        method: Optional[str] = typer.Option(None, "--method", help="Training method (default ce)."),
        method_param: Optional[List[str]] = o.MethodParam,
        epochs: Optional[int] = o.Epochs, batch_size: Optional[int] = o.BatchSize, lr: Optional[float] = o.Lr,
        optimizer: Optional[str] = o.Optimizer, schedule: Optional[str] = o.Schedule, seed: Optional[int] = o.Seed,
        device: Optional[str] = o.Device, amp: Optional[str] = o.Amp, workers: Optional[int] = o.Workers,
        label_smoothing: Optional[float] = o.LabelSmoothing, grad_clip: Optional[float] = o.GradClip,
        warmup_epochs: Optional[float] = o.WarmupEpochs,
        pretrained: bool = o.Pretrained, weights: Optional[str] = o.Weights,
        out: Optional[str] = o.Out, resume: bool = o.Resume, config: Optional[Path] = o.Config,
        json_out: bool = o.Json,
    ) -> None:
        """Train one model from scratch, from hub weights or from a local weights file."""
        from compress.cli.progress import RichProgress
        from compress.cli.render import render_job
        from compress.engine.jobs import run_train

        with cli_errors():
            flags = dict(data=data, train_ratio=train_ratio, val_fraction=val_fraction, val_dir=val_dir,
                         test_dir=test_dir, image_size=image_size, student=model, method=method or None,
                         epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, schedule=schedule,
                         seed=seed, device=device, amp=amp, workers=workers,
                         label_smoothing=label_smoothing, grad_clip=grad_clip, warmup_epochs=warmup_epochs,
                         pretrained=pretrained or None,
                         weights=weights, out=out, resume=resume or None)
            job = o.build_job(config, flags, o.parse_params(method_param), default_method="ce")
            with RichProgress(enabled=not json_out) as progress:
                result = run_train(job, progress=progress)
            if json_out:
                print_json(result.to_dict())
            else:
                render_job(result, f"compress train — {result.rows[0].architecture} ({result.method})")
