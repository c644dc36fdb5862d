"""Retrieval metrics: mAP, mAP@R, R-precision, P@k, mAP@k and the 11-point PR curve.

Follows Xiong et al. (JSTARS 2020): mAP over the whole ranked gallery and P@k, with four distances
(see ``compress.metrics.distances``); Kang et al. (Remote Sens. 2020): PR curve and mAP with a
cut-off R = 20 (``map_at_k``); Musgrave et al. ("A metric learning reality check", 2020): mAP@R
and R-precision with R = the number of gallery items relevant to the query.

A gallery item is relevant when its label equals the query's label. The gallery is ranked by
increasing distance; equal distances keep gallery order (stable sort). Queries with no relevant
item in the gallery have no defined AP and are left out of every mean (``n_queries_skipped``).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np

from compress.errors import UserInputError
from compress.io import atomic_path, to_jsonable
from compress.metrics.arrays import as_embeddings, as_labels, check_same_length
from compress.metrics.plotting import new_figure, save_figure
from compress.metrics.distances import DISTANCES, iter_distance_blocks, pairwise_distance

__all__ = [
    "PRCurve",
    "RetrievalMetrics",
    "pairwise_distance",
    "retrieval_report",
    "write_pr_curve_csv",
    "plot_pr_curve_png",
]


@dataclass(frozen=True)
class PRCurve:
    """Interpolated precision (max precision at any recall ≥ r) at fixed recall levels, averaged over queries."""

    recall: tuple[float, ...]
    precision: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"recall": list(self.recall), "precision": list(self.precision)}


@dataclass(frozen=True)
class RetrievalMetrics:
    """Mean over evaluated queries of each per-query metric (all in [0, 1])."""

    metric: str
    n_queries: int  # queries evaluated (with ≥ 1 relevant gallery item)
    n_queries_skipped: int  # queries with no relevant gallery item
    n_gallery: int  # gallery items ranked per query (self excluded)
    exclude_self: bool
    map: float  # AP over the whole ranked gallery
    map_at_r: float  # Musgrave et al.: (1/R) Σ_{i≤R} P(i)·rel(i), R = #relevant
    r_precision: float  # #relevant in the top R / R
    precision_at_k: dict[int, float] = field(default_factory=dict)
    map_at_k: dict[int, float] = field(default_factory=dict)  # Σ_{i≤k} P(i)·rel(i) / #relevant in top k
    pr_curve: PRCurve = field(default_factory=lambda: PRCurve((), ()))

    def to_dict(self) -> dict:
        return to_jsonable(self)


CurveLike = Union[PRCurve, RetrievalMetrics]


def _check_ks(ks: Sequence[int], n_ranked: int) -> tuple[int, ...]:
    try:
        out = tuple(sorted({int(k) for k in ks}))
    except (TypeError, ValueError):
        raise UserInputError(f"ks must be a list of positive integers; got {ks!r}.") from None
    if not out or out[0] < 1:
        raise UserInputError(f"ks must be a non-empty list of positive integers; got {list(ks)!r}.")
    if out[-1] > n_ranked:
        raise UserInputError(
            f"P@{out[-1]} asks for more results than the {n_ranked} gallery items ranked per query; "
            f"use ks ≤ {n_ranked}."
        )
    return out


def _is_same_set(q: np.ndarray, ql: np.ndarray, g: np.ndarray, gl: np.ndarray) -> bool:
    return q.shape == g.shape and ql.shape == gl.shape and np.array_equal(ql, gl) and np.array_equal(q, g)


class _Totals:
    """Sums of per-query metrics across distance blocks."""

    def __init__(self, ks: tuple[int, ...], levels: np.ndarray) -> None:
        self.ks, self.levels = ks, levels
        self.n = 0
        self.skipped = 0
        self.ap = self.ap_r = self.r_prec = 0.0
        self.p_at = dict.fromkeys(ks, 0.0)
        self.ap_at = dict.fromkeys(ks, 0.0)
        self.pr = np.zeros(len(levels))

    def add(self, rel: np.ndarray) -> None:
        """``rel`` ``[rows, N]``: relevance of each query's gallery in ranked order."""
        n_rel = rel.sum(1)
        valid = n_rel > 0
        self.skipped += int((~valid).sum())
        rel, n_rel = rel[valid], n_rel[valid]
        rows, n = rel.shape
        if rows == 0:
            return
        self.n += rows
        ranks = np.arange(1, n + 1)
        hits = np.cumsum(rel, axis=1)
        prec = hits / ranks
        prec_at_hit = prec * rel
        self.ap += float((prec_at_hit.sum(1) / n_rel).sum())
        in_top_r = ranks[None, :] <= n_rel[:, None]
        self.ap_r += float(((prec_at_hit * in_top_r).sum(1) / n_rel).sum())
        self.r_prec += float((hits[np.arange(rows), n_rel - 1] / n_rel).sum())
        for k in self.ks:
            hits_k = hits[:, k - 1]
            self.p_at[k] += float(hits_k.sum() / k)
            num = prec_at_hit[:, :k].sum(1)
            self.ap_at[k] += float(np.divide(num, hits_k, out=np.zeros(rows), where=hits_k > 0).sum())
        # Interpolated precision at recall r = max precision over ranks whose recall ≥ r; recall
        # never decreases with rank, so those ranks are a suffix starting at the first one reaching r.
        best_after = np.maximum.accumulate(prec[:, ::-1], axis=1)[:, ::-1]
        recall = hits / n_rel[:, None]
        for j, level in enumerate(self.levels):
            first = np.argmax(recall >= level - 1e-12, axis=1)
            self.pr[j] += float(best_after[np.arange(rows), first].sum())


def retrieval_report(
    query_emb: Any,
    query_labels: Any,
    gallery_emb: Any,
    gallery_labels: Any,
    metric: str = "euclidean",
    ks: Sequence[int] = (1, 5, 10, 20),
    exclude_self: bool | None = None,
    n_recall_points: int = 11,
    block_size: int | None = None,
) -> RetrievalMetrics:
    """Rank the gallery ``[N, D]`` for every query ``[M, D]`` by ``metric`` and score the ranking.

    ``exclude_self``: drop gallery item i from query i's ranking (query set == gallery set). ``None``
    decides by itself: True when embeddings and labels of both sets are identical, else False
    (cross-source or query/database splits exclude nothing). ``ks`` are the cut-offs for P@k and
    mAP@k. Distances are computed ``block_size`` query rows at a time (auto: ~2M distances per block).
    """
    DISTANCES.get(metric)  # unknown names fail before any work
    q = as_embeddings(query_emb, "query_emb")
    g = as_embeddings(gallery_emb, "gallery_emb")
    ql = as_labels(query_labels, "query_labels")
    gl = as_labels(gallery_labels, "gallery_labels")
    check_same_length(q, ql, "query_emb", "query_labels")
    check_same_length(g, gl, "gallery_emb", "gallery_labels")
    if exclude_self is None:
        exclude_self = query_emb is gallery_emb or _is_same_set(q, ql, g, gl)
    if exclude_self and len(q) != len(g):
        raise UserInputError(
            f"exclude_self=True needs the query set to be the gallery set, but there are {len(q)} queries "
            f"and {len(g)} gallery items; pass exclude_self=False for separate query and gallery sets."
        )
    n_ranked = len(g) - int(bool(exclude_self))
    if n_ranked < 1:
        raise UserInputError("the gallery has no item left to rank once each query is excluded from it.")
    ks = _check_ks(ks, n_ranked)
    if int(n_recall_points) < 2:
        raise UserInputError(f"n_recall_points must be ≥ 2 (11 is the usual choice); got {n_recall_points}.")
    totals = _Totals(ks, np.round(np.linspace(0.0, 1.0, int(n_recall_points)), 12))

    for start, dist in iter_distance_blocks(q, g, metric, block_size):
        rows = dist.shape[0]
        order = np.argsort(dist, axis=1, kind="stable")
        if exclude_self:
            keep = order != np.arange(start, start + rows)[:, None]
            order = order[keep].reshape(rows, n_ranked)
        totals.add(gl[order] == ql[start : start + rows, None])

    if totals.n == 0:
        raise UserInputError(
            "no query has a relevant item (same label) in the gallery, so retrieval metrics are undefined; "
            "check that query and gallery labels use the same class indices."
        )
    n = totals.n
    return RetrievalMetrics(
        metric=metric,
        n_queries=n,
        n_queries_skipped=totals.skipped,
        n_gallery=n_ranked,
        exclude_self=bool(exclude_self),
        map=totals.ap / n,
        map_at_r=totals.ap_r / n,
        r_precision=totals.r_prec / n,
        precision_at_k={k: v / n for k, v in totals.p_at.items()},
        map_at_k={k: v / n for k, v in totals.ap_at.items()},
        pr_curve=PRCurve(tuple(float(x) for x in totals.levels), tuple(float(x) / n for x in totals.pr)),
    )


def _curves(curves: CurveLike | Mapping[str, CurveLike]) -> dict[str, PRCurve]:
    if isinstance(curves, (PRCurve, RetrievalMetrics)):
        curves = {"precision": curves}
    if not isinstance(curves, Mapping) or not curves:
        raise UserInputError("curves must be a PRCurve, a RetrievalMetrics or a non-empty {name: curve} mapping.")
    out = {}
    for name, c in curves.items():
        c = c.pr_curve if isinstance(c, RetrievalMetrics) else c
        if not isinstance(c, PRCurve) or not c.recall:
            raise UserInputError(f"curve '{name}' is not a non-empty PRCurve (got {type(c).__name__}).")
        out[str(name)] = c
    return out


def write_pr_curve_csv(path: str | os.PathLike, curves: CurveLike | Mapping[str, CurveLike]) -> Path:
    """CSV with a ``recall`` column and one precision column per named curve (atomic write)."""
    named = _curves(curves)
    recall = next(iter(named.values())).recall
    for name, c in named.items():
        if len(c.recall) != len(recall) or not np.allclose(c.recall, recall):
            raise UserInputError(
                f"curve '{name}' uses other recall levels; compute all curves with the same n_recall_points."
            )
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["recall", *named])
            for i, r in enumerate(recall):
                w.writerow([f"{r:.6g}", *(f"{c.precision[i]:.6f}" for c in named.values())])
    return Path(path)


def plot_pr_curve_png(
    path: str | os.PathLike, curves: CurveLike | Mapping[str, CurveLike], title: str = "Precision–recall"
) -> Path:
    """Plot one line per named curve (recall on x, interpolated precision on y) to a PNG."""
    named = _curves(curves)
    fig = new_figure(6.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for name, c in named.items():
        ax.plot(c.recall, c.precision, marker="o", markersize=3, label=name)
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0.0, 1.0), ylim=(0.0, 1.02), title=title)
    ax.grid(True, alpha=0.3)
    if len(named) > 1 or "precision" not in named:
        ax.legend(loc="lower left")
    return save_figure(fig, path)
