"""``compress evaluate``: metrics of a checkpoint on its saved split or a new folder."""
from __future__ import annotations

from typing import Optional

import typer

from compress.cli.common import cli_errors, console, print_json


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        checkpoint: str = typer.Argument(..., help="Checkpoint folder (or its run folder → checkpoints/best)."),
        data: Optional[str] = typer.Option(None, "--data", help="Class-per-folder root to evaluate on instead."),
        split: str = typer.Option("test", "--split", help="Part of the saved split: train, val or test."),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
        out: Optional[str] = typer.Option(None, "--out", "-o", help="Folder for metrics.json and confusion files."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Overall accuracy, per-class accuracy, macro-F1, Cohen's kappa and the confusion matrix."""
        from rich.table import Table

        from compress.engine.reevaluate import evaluate_checkpoint

        with cli_errors():
            r = evaluate_checkpoint(checkpoint, data=data, split=split, device=device, out=out)
            if json_out:
                print_json(r.to_dict())
                return
            m = r.metrics
            t = Table(title=f"{r.checkpoint} on {r.data} ({r.split or 'folder'}, {r.n} images)", title_justify="left")
            t.add_column("metric")
            t.add_column("value", justify="right")
            t.add_row("overall accuracy", f"{100 * m['oa']:.2f} %")
            t.add_row("macro-F1", f"{100 * m['macro_f1']:.2f} %")
            t.add_row("Cohen's kappa", "—" if m["kappa"] is None else f"{m['kappa']:.4f}")
            worst = sorted((v, k) for k, v in m["per_class_accuracy"].items() if v is not None)[:3]
            t.add_row("weakest classes", ", ".join(f"{k} {100 * v:.1f} %" for v, k in worst))
            console.print(t)
            console.print(f"written: [bold]{r.out_dir}[/bold] (metrics.json, confusion.csv, confusion.png)")
