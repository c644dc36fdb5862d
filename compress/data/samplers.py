"""Batch samplers that shape what a batch holds: same-class pairs (PSKD, CS-KD) and P×K identity
balance (metric learning). Both are seeded by (seed, epoch), so a resumed run sees the same batches.

They yield lists of dataset indices and have ``len()``, so they can be a DataLoader ``batch_sampler``.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from compress.errors import UserInputError


def _rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) % (2**32), int(epoch) % (2**32), 0x5A17])


def _labels(labels: Sequence[int] | np.ndarray, who: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.size == 0:
        raise UserInputError(f"{who}: labels must be a non-empty 1-D sequence of class indices.")
    if not np.issubdtype(arr.dtype, np.integer):
        raise UserInputError(f"{who}: labels must be integer class indices, got dtype {arr.dtype}.")
    return arr.astype(np.int64)


class SameClassPairSampler:
    """Batches of ``batch_size`` anchors followed by one partner of the SAME class per anchor.

    Every training sample is an anchor once per epoch (shuffled); each partner is drawn uniformly
    from the other samples of the anchor's class (the anchor itself only if its class has one
    sample). A yielded batch is ``[a_1..a_n, p_1..p_n]`` (``2n`` indices, ``n ≤ batch_size``), the
    layout of Yun et al.'s class-wise self-KD that PSKD builds on.
    """

    layout = "pairs"  # data-parallel ranks split anchors and their partners alike

    def __init__(self, labels: Sequence[int] | np.ndarray, batch_size: int, seed: int = 0, epoch: int = 0,
                 drop_last: bool = False) -> None:
        self.labels = _labels(labels, "SameClassPairSampler")
        if batch_size < 1:
            raise UserInputError(f"SameClassPairSampler: batch_size must be ≥ 1, got {batch_size}.")
        self.batch_size, self.seed, self.epoch, self.drop_last = int(batch_size), int(seed), int(epoch), drop_last
        self._by_class = {int(c): np.flatnonzero(self.labels == c) for c in np.unique(self.labels)}

    def __len__(self) -> int:
        n = len(self.labels)
        if self.drop_last and n >= self.batch_size:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def partner(self, anchor: int, rng: np.random.Generator) -> int:
        members = self._by_class[int(self.labels[anchor])]
        if len(members) == 1:
            return int(anchor)
        j = int(rng.integers(len(members) - 1))
        pos = int(np.searchsorted(members, anchor))
        return int(members[j + 1 if j >= pos else j])  # uniform over the members without the anchor

    def __iter__(self) -> Iterator[list[int]]:
        rng = _rng(self.seed, self.epoch)
        order = rng.permutation(len(self.labels))
        for start in range(0, len(order), self.batch_size):
            anchors = [int(i) for i in order[start:start + self.batch_size]]
            if self.drop_last and len(anchors) < self.batch_size and start > 0:
                return
            yield anchors + [self.partner(a, rng) for a in anchors]


class PKSampler:
    """Identity-balanced batches: ``p`` distinct classes × ``k`` samples each (``p·k`` indices).

    Per epoch every class is shuffled and cut into groups of ``k`` (a class with fewer than ``k``
    samples, or a short last group, is topped up by drawing from the class again); the groups are
    shuffled and dealt into batches of ``p`` groups of distinct classes. Groups that cannot be
    placed with ``p − 1`` other classes are dropped, as in the usual re-identification sampler.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, p: int, k: int, seed: int = 0, epoch: int = 0) -> None:
        self.labels = _labels(labels, "PKSampler")
        classes = np.unique(self.labels)
        if k < 1 or p < 1:
            raise UserInputError(f"PKSampler: p and k must be ≥ 1, got p={p}, k={k}.")
        if p > len(classes):
            raise UserInputError(f"PKSampler: p={p} classes per batch but the data has only {len(classes)}; "
                                 f"lower p to at most {len(classes)}.")
        self.p, self.k, self.seed, self.epoch = int(p), int(k), int(seed), int(epoch)
        self.layout = ("groups", self.k)  # data-parallel ranks take whole identity groups
        self._by_class = {int(c): np.flatnonzero(self.labels == c) for c in classes}

    def _batches(self) -> list[list[int]]:
        rng = _rng(self.seed, self.epoch)
        groups: dict[int, list[list[int]]] = {}
        for c, members in self._by_class.items():
            idx = list(rng.permutation(members))
            if len(idx) % self.k:
                idx += list(rng.choice(members, self.k - len(idx) % self.k, replace=True))
            groups[c] = [[int(i) for i in idx[s:s + self.k]] for s in range(0, len(idx), self.k)]
        batches: list[list[int]] = []
        while True:
            ready = [c for c, g in groups.items() if g]
            if len(ready) < self.p:
                break
            # classes with more groups left go first (weighted draw), so few groups are left unplaced
            weights = np.array([len(groups[c]) for c in ready], dtype=np.float64)
            chosen = rng.choice(ready, self.p, replace=False, p=weights / weights.sum())
            batches.append([i for c in chosen for i in groups[int(c)].pop()])
        return batches

    def __len__(self) -> int:
        return len(self._batches())

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())
