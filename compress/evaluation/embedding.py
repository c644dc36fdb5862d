"""Evaluating embedding models: retrieval (single- and cross-source), kNN accuracy, k-means NMI/ACC.

Protocol (Kang et al. §4.2–4.3, Xiong et al. §IV-A): the run's test part are the queries, its
training part the database; kNN classifies test embeddings by their K nearest training
embeddings; k-means clusters the test embeddings. When query and gallery are the same set, each
query is left out of its own ranking. Cross-source: source-1 queries embedded by F against a
source-2 gallery embedded by G, and the reverse.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from compress.hardware import autocast
from compress.errors import UserInputError
from compress.io import to_jsonable, write_json_atomic

TASKS = ("retrieval", "knn", "clustering", "all")


@torch.no_grad()
def embed_dataset(model: torch.nn.Module, dataset: Dataset, device: torch.device | str = "cpu", *,
                  batch_size: int = 128, amp: torch.dtype | None = None, part: int | None = None,
                  with_logits: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``model.embed`` over ``dataset`` in order → embeddings ``[N, D]`` float32, labels ``[N]``, logits or None.

    ``part`` picks ``x[part]`` from a paired data set's ``((x1, x2), y)`` items.
    """
    if not callable(getattr(model, "embed", None)):
        raise UserInputError(f"{type(model).__name__} has no embed(); retrieval needs an embedding model "
                             "(embed-bnneck or embed-cosine).")
    device = torch.device(device)
    was = model.training
    model.eval()
    from compress.evaluation.classifier import gathered, sharded

    embs, labels, logits = [], [], []
    try:
        for x, y in DataLoader(sharded(dataset), batch_size=batch_size, shuffle=False):
            x = (x[part] if part is not None else x).to(device)
            with autocast(device, amp):
                embs.append(model.embed(x).float().cpu())
                if with_logits:
                    logits.append(model(x).float().cpu())
            labels.append(torch.as_tensor(y))
    finally:
        model.train(was)
    e, y = gathered(torch.cat(embs).numpy(), torch.cat(labels).numpy())
    return e, y, (gathered(torch.cat(logits).numpy())[0] if with_logits else None)


def _ks_for(ks: Sequence[int], n_ranked: int) -> tuple[int, ...]:
    out = tuple(k for k in ks if k <= n_ranked)
    return out or (1,)


def within_set_scores(model: torch.nn.Module, dataset: Dataset, device, amp=None, *,
                      ks: Sequence[int] = (1, 5, 10, 20), metric: str = "euclidean") -> tuple[float, dict[str, Any]]:
    """Selection score (leave-one-out mAP over ``dataset``) and metrics incl. the classifier's OA."""
    from compress.metrics.retrieval import retrieval_report

    emb, y, logits = embed_dataset(model, dataset, device, amp=amp, with_logits=True)
    oa = float((logits.argmax(1) == y).mean())
    if np.bincount(y).max() < 2:  # no query has a relevant item: retrieval is undefined, select on OA
        return oa, {"map": None, "oa": oa}
    r = retrieval_report(emb, y, emb, y, metric=metric, ks=_ks_for(ks, len(y) - 1), exclude_self=True)
    out = {"map": r.map, "map_at_r": r.map_at_r, "oa": oa}
    out.update({f"p@{k}": v for k, v in r.precision_at_k.items()})
    return r.map, out


@dataclass
class EmbeddingEvalResult:
    """``retrieval`` maps a direction name (``single``, ``s1->s2`` …) to ``RetrievalMetrics.to_dict()``."""

    task: str
    metric: str
    n_query: int
    n_gallery: int
    retrieval: dict[str, dict[str, Any]] = field(default_factory=dict)
    knn_accuracy: float | None = None
    knn_k: int | None = None
    clustering: dict[str, Any] | None = None
    files: list[str] = field(default_factory=list)
    checkpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


EmbSet = tuple[np.ndarray, np.ndarray]


def score_embeddings(query: EmbSet, gallery: EmbSet, task: str = "all", *, metric: str = "euclidean",
                     ks: Sequence[int] = (1, 5, 10, 20), knn_k: int = 10, seed: int = 0,
                     cross: dict[str, tuple[EmbSet, EmbSet]] | None = None) -> EmbeddingEvalResult:
    """All requested metrics from embeddings already computed (``query``/``gallery`` = (emb, labels)).

    ``cross`` adds more retrieval directions, name → (query set, gallery set).
    """
    from compress.metrics.clustering import kmeans_nmi_acc, knn_accuracy
    from compress.metrics.retrieval import retrieval_report

    if task not in TASKS:
        raise UserInputError(f"task must be one of {', '.join(TASKS)}, got '{task}'.")
    (qe, ql), (ge, gl) = query, gallery
    same = qe is ge
    res = EmbeddingEvalResult(task=task, metric=metric, n_query=len(ql), n_gallery=len(gl))
    if task in ("retrieval", "all"):
        dirs = {"single": (query, gallery), **(cross or {})}
        for name, ((a, al), (b, bl)) in dirs.items():
            excl = a is b
            r = retrieval_report(a, al, b, bl, metric=metric, ks=_ks_for(ks, len(bl) - int(excl)), exclude_self=excl)
            res.retrieval[name] = r.to_dict()
    if task in ("knn", "all"):
        k = min(knn_k, len(gl) - int(same))
        res.knn_k = k
        res.knn_accuracy = (knn_accuracy(ge, gl, k=k, metric=metric, leave_one_out=True) if same
                            else knn_accuracy(ge, gl, qe, ql, k=k, metric=metric))
    if task in ("clustering", "all"):
        res.clustering = kmeans_nmi_acc(qe, ql, seed=seed).to_dict()
    return res


def write_outputs(result: EmbeddingEvalResult, out_dir: str | Path, prefix: str = "") -> EmbeddingEvalResult:
    """``{prefix}embedding_eval.json`` and, for retrieval, the PR curves as CSV + PNG."""
    from compress.metrics.retrieval import PRCurve, plot_pr_curve_png, write_pr_curve_csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if result.retrieval:
        curves = {n: PRCurve(tuple(r["pr_curve"]["recall"]), tuple(r["pr_curve"]["precision"]))
                  for n, r in result.retrieval.items()}
        result.files += [str(write_pr_curve_csv(out / f"{prefix}pr_curve.csv", curves)),
                         str(plot_pr_curve_png(out / f"{prefix}pr_curve.png", curves))]
    path = out / f"{prefix}embedding_eval.json"
    result.files.append(str(path))
    write_json_atomic(path, result.to_dict())
    return result


def eval_copy(ds):
    """The same subset without augmentation (for embedding training images)."""
    from compress.data.transforms import EvalTransform

    out = copy.copy(ds)
    if hasattr(out, "eval_view"):
        return out.eval_view()
    out.transform, out.augment = EvalTransform(int(getattr(ds.transform, "size", 0) or _size_of(ds))), False
    return out


def _size_of(ds) -> int:
    x = ds[0][0]
    return int(x.shape[-1])
