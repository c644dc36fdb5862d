"""``compress evaluate``: metrics of a checkpoint on its saved split or a new folder."""
from __future__ import annotations

from typing import List, Optional

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
        task: str = typer.Option("classification", "--task",
                                 help="classification | retrieval | clustering | knn | all (embedding tasks)."),
        metric: str = typer.Option("euclidean", "--metric", help="Retrieval/kNN distance: euclidean, l1, cosine, "
                                   "correlation."),
        k: Optional[List[int]] = typer.Option(None, "--k", help="P@k / mAP@k cut-offs (repeatable; default 1 5 10 20)."),
        knn_k: int = typer.Option(10, "--knn-k", help="Neighbours of the kNN classifier."),
        cross_checkpoint: Optional[str] = typer.Option(None, "--cross-checkpoint",
                                                       help="Second-source network G: cross-source retrieval."),
        cross_data: Optional[str] = typer.Option(None, "--cross-data", help="Second-source image root."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Overall accuracy, per-class accuracy, macro-F1, Cohen's kappa and the confusion matrix."""
        from rich.table import Table

        from compress.engine.reevaluate import evaluate_checkpoint

        with cli_errors():
            if task != "classification":
                _embedding(checkpoint, task, data, split, metric, k, knn_k, cross_checkpoint, cross_data, out,
                           device, json_out)
                return
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


def _embedding(checkpoint, task, data, split, metric, k, knn_k, cross_checkpoint, cross_data, out, device,
               json_out) -> None:
    """Retrieval (mAP, mAP@R, P@k, PR curve), kNN accuracy and k-means NMI/ACC of an embedding model."""
    from rich.table import Table

    from compress.engine.device import resolve_device
    from compress.engine.embedding_eval import evaluate_embeddings
    from compress.errors import UserInputError

    if task not in ("retrieval", "clustering", "knn", "all"):
        raise UserInputError(f"--task must be classification, retrieval, clustering, knn or all, got '{task}'.")
    r = evaluate_embeddings(checkpoint, task, data=data, query_split=split, metric=metric,
                            ks=tuple(k) if k else (1, 5, 10, 20), knn_k=knn_k, cross_checkpoint=cross_checkpoint,
                            cross_data=cross_data, out_dir=out, device=str(resolve_device(device)))
    if json_out:
        print_json(r.to_dict())
        return
    t = Table(title=f"{checkpoint}: {task} ({r.metric}; {r.n_query} queries, {r.n_gallery} gallery)",
              title_justify="left")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for direction, m in r.retrieval.items():
        t.add_row(f"{direction} mAP", f"{100 * m['map']:.2f} %")
        t.add_row(f"{direction} mAP@R", f"{100 * m['map_at_r']:.2f} %")
        for kk, v in m["precision_at_k"].items():
            t.add_row(f"{direction} P@{kk}", f"{100 * v:.2f} %")
    if r.knn_accuracy is not None:
        t.add_row(f"kNN accuracy (k={r.knn_k})", f"{100 * r.knn_accuracy:.2f} %")
    if r.clustering:
        t.add_row("k-means NMI", f"{r.clustering['nmi']:.4f}")
        t.add_row("k-means ACC", f"{100 * r.clustering['acc']:.2f} %")
    console.print(t)
    if r.files:
        console.print("written: " + ", ".join(r.files))
