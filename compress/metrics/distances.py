"""Distances between embeddings, as used for retrieval and kNN (Xiong et al., JSTARS 2020, Table XII).

The four "similarity indicators" of Xiong et al. are turned into distances (smaller = more similar):
``euclidean`` ‖q−g‖₂ (Q_E), ``l1`` mean |q−g| over the D dims (Q_MAE, the paper's mean absolute
error, so it is the L1 norm divided by D), ``cosine`` 1 − cos(q, g) (Q_cos) and ``correlation``
1 − Pearson(q, g) (Q_CC, the cosine of the mean-centred vectors).

Distances are computed with torch on the CPU in the inputs' float precision, one block of query
rows at a time (``iter_distance_blocks``), so a 10k × 10k evaluation never holds the full matrix.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import torch

from compress.errors import UserInputError
from compress.metrics.arrays import as_embeddings
from compress.registry import Registry

DistanceFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
DISTANCES: Registry[DistanceFn] = Registry("distance")

# A zero vector (or a constant one, for correlation) has no direction; clamping its norm makes
# its cosine 0, i.e. distance 1 to everything, instead of NaN.
_EPS = 1e-12
# Elements of one block of the distance matrix (16 MiB in float64); the retrieval metrics keep a
# dozen same-sized arrays per block, so their peak stays near 200 MiB whatever the set sizes.
_BLOCK_ELEMENTS = 1 << 21


@DISTANCES.register("euclidean")
def euclidean_distance(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """‖q_i − g_j‖₂ for q ``[M, D]``, g ``[N, D]`` → ``[M, N]``."""
    sq = (q * q).sum(1, keepdim=True) + (g * g).sum(1)[None, :] - 2.0 * (q @ g.T)
    return sq.clamp_min_(0.0).sqrt_()


@DISTANCES.register("l1")
def mean_absolute_distance(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference (MAE) (1/D)·Σ_d |q_id − g_jd| → ``[M, N]``."""
    return torch.cdist(q, g, p=1.0) / q.shape[1]


@DISTANCES.register("cosine")
def cosine_distance(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """1 − q·g / (‖q‖‖g‖) → ``[M, N]``, in [0, 2]."""
    qn = q / q.norm(dim=1, keepdim=True).clamp_min(_EPS)
    gn = g / g.norm(dim=1, keepdim=True).clamp_min(_EPS)
    return 1.0 - qn @ gn.T


@DISTANCES.register("correlation")
def correlation_distance(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """1 − Pearson correlation of the two vectors' components → ``[M, N]``, in [0, 2]."""
    return cosine_distance(q - q.mean(1, keepdim=True), g - g.mean(1, keepdim=True))


def distance_names() -> list[str]:
    return DISTANCES.names()


def _pair(query: Any, gallery: Any) -> tuple[torch.Tensor, torch.Tensor]:
    q = as_embeddings(query, "query embeddings")
    g = as_embeddings(gallery, "gallery embeddings")
    if q.shape[1] != g.shape[1]:
        raise UserInputError(
            f"query embeddings have {q.shape[1]} dims but gallery embeddings have {g.shape[1]}; "
            "both must come from the same embedding space."
        )
    dtype = np.float64 if np.float64 in (q.dtype, g.dtype) else np.float32
    return torch.from_numpy(np.ascontiguousarray(q, dtype)), torch.from_numpy(np.ascontiguousarray(g, dtype))


def block_rows(n_gallery: int, block_size: int | None) -> int:
    """Query rows per block: the caller's choice, or enough to fill ``_BLOCK_ELEMENTS``."""
    if block_size is None:
        return max(1, _BLOCK_ELEMENTS // max(1, n_gallery))
    if int(block_size) < 1:
        raise UserInputError(f"block_size must be a positive number of query rows; got {block_size}.")
    return int(block_size)


def iter_distance_blocks(
    query: Any, gallery: Any, metric: str = "euclidean", block_size: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start_row, distances[rows, N])`` blocks covering all query rows in order."""
    fn = DISTANCES.get(metric)
    q, g = _pair(query, gallery)
    rows = block_rows(g.shape[0], block_size)
    with torch.no_grad():
        for start in range(0, q.shape[0], rows):
            yield start, fn(q[start : start + rows], g).numpy()


def pairwise_distance(query: Any, gallery: Any, metric: str = "euclidean") -> np.ndarray:
    """All distances query ``[M, D]`` × gallery ``[N, D]`` → numpy ``[M, N]`` (smaller = closer).

    ``metric`` is one of ``euclidean``, ``l1`` (mean absolute difference), ``cosine``, ``correlation``.
    """
    blocks = [d for _, d in iter_distance_blocks(query, gallery, metric)]
    return np.concatenate(blocks, axis=0)
