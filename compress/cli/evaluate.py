"""``compress evaluate``: metrics of a checkpoint on its saved split or a new folder."""
from __future__ import annotations

from typing import List, Optional

import typer

from rich.markup import escape

from compress.cli.common import console, print_json, show_table
from compress.cli.options import Group, Given, arg, command, opt

OPTIONS = Group("evaluate", (
    arg("model", "Checkpoint folder, a train/distill run folder (→ the best, student, checkpoint) or an exported "
        ".onnx file."),
    opt("data", "--data", help="Class-per-folder root to evaluate on instead of the saved split.", show_default=False),
    opt("split", "--split", help="Part of the saved split: train, val or test.", default="test"),
    opt("device", "--device", help="auto, cpu or cuda.", default="auto"),
    opt("out", "--out", "-o", help="Folder for metrics.json and confusion files.", show_default="the run folder"),
    opt("task", "--task", help="classification | retrieval | clustering | knn | all (embedding tasks).",
        default="classification"),
    opt("metric", "--metric", help="Retrieval/kNN distance: euclidean, l1, cosine, correlation.", default="euclidean"),
    opt("k", "--k", type=Optional[List[int]], help="P@k / mAP@k cut-offs (repeatable).", show_default="1 5 10 20"),
    opt("knn_k", "--knn-k", type=int, default=10, help="Neighbours of the kNN classifier."),
    opt("cross_checkpoint", "--cross-checkpoint", help="Second-source network G: cross-source retrieval.",
        show_default=False),
    opt("cross_data", "--cross-data", help="Second-source image root.", show_default=False),
    opt("json", "--json", type=bool, default=False, show_default=False, help="Print JSON."),
))


def register(app: typer.Typer) -> None:
    @command(app, "evaluate", OPTIONS)
    def evaluate(given: Given) -> None:
        """Overall accuracy, per-class accuracy, macro-F1, Cohen's kappa and the confusion matrix."""
        from compress.jobs.evaluate import EvaluateConfig, run_evaluate

        own = dict(given.own)
        as_json, ks = own.pop("json"), own.pop("k")
        result = run_evaluate(EvaluateConfig(**own, ks=tuple(ks) if ks else (1, 5, 10, 20)))
        if as_json:
            print_json(result.to_dict())
        elif given["task"] == "classification":
            _classification(result)
        else:
            _embedding(result, given["model"], given["task"])


def _classification(r) -> None:
    from rich.table import Table

    m = r.metrics
    t = Table(title=f"{r.checkpoint} on {r.data} ({r.split or 'folder'}, {r.n} images)", title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("overall accuracy", f"{100 * m['oa']:.2f} %")
    t.add_row("macro-F1", f"{100 * m['macro_f1']:.2f} %")
    t.add_row("Cohen's kappa", "—" if m["kappa"] is None else f"{m['kappa']:.4f}")
    worst = sorted((v, k) for k, v in m["per_class_accuracy"].items() if v is not None)[:3]
    t.add_row("weakest classes", ", ".join(f"{k} {100 * v:.1f} %" for v, k in worst))
    show_table(t)
    console.print(f"written: [bold]{escape(str(r.out_dir))}[/bold] (metrics.json, confusion.csv, confusion.png)", markup=True)


def _embedding(r, model: str, task: str) -> None:
    from rich.table import Table

    t = Table(title=f"{model}: {task} ({r.metric}; {r.n_query} queries, {r.n_gallery} gallery)", title_justify="left")
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
    show_table(t)
    if r.files:
        console.print("written: " + ", ".join(r.files))
