"""Seeded, stratified train/val/test splits, saved as JSON next to the run and reused on resume/evaluate."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compress.errors import DataError
from compress.io import read_json, sha256_text, write_json_atomic

SPLIT_FILE = "split.json"


@dataclass(frozen=True)
class Split:
    """Relative keys of each part (as in ``ImageSource.keys``) plus how the split was made."""

    root: str
    class_names: tuple[str, ...]
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    seed: int
    train_ratio: float | None
    val_fraction: float

    @property
    def hash(self) -> str:
        """Content hash recorded in checkpoint manifests (same split ⇔ same hash)."""
        text = "\n".join(["|".join(self.class_names), *self.train, "--", *self.val, "--", *self.test])
        return sha256_text(text)[:16]

    def to_dict(self) -> dict:
        return {"root": self.root, "class_names": list(self.class_names), "seed": self.seed,
                "train_ratio": self.train_ratio, "val_fraction": self.val_fraction, "hash": self.hash,
                "train": list(self.train), "val": list(self.val), "test": list(self.test)}


def stratified_split(keys: list[str], labels: np.ndarray, class_names: list[str], *, train_ratio: float,
                     val_fraction: float = 0.1, seed: int = 0, root: str = "") -> Split:
    """Per class: shuffle with ``seed``, take ``round(n·train_ratio)`` for training (≥1, ≤n−1), the rest test.

    ``val_fraction`` of each class's training part (rounded, kept only while ≥1 image stays in
    training) is held out for checkpoint selection, so the test part is never used to pick a model.
    """
    if not 0.0 < train_ratio < 1.0:
        raise DataError(f"--train-ratio must be between 0 and 1 (exclusive), got {train_ratio}; e.g. 0.2 or 0.5.")
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val fraction must be in [0, 1), got {val_fraction}.")
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for ci, name in enumerate(class_names):
        idx = np.flatnonzero(labels == ci)
        n = len(idx)
        n_train = int(round(n * train_ratio))
        if n < 2 or n_train < 1 or n_train > n - 1:
            raise DataError(
                f"Class '{name}' has {n} image(s): at --train-ratio {train_ratio} it would leave "
                f"{n_train} for training and {n - n_train} for testing; each class needs at least one of each "
                "(add images or change the ratio)."
            )
        idx = idx[rng.permutation(n)]
        tr = idx[:n_train]
        n_val = int(round(n_train * val_fraction))
        n_val = min(n_val, n_train - 1)
        val += [keys[i] for i in tr[:n_val]]
        train += [keys[i] for i in tr[n_val:]]
        test += [keys[i] for i in idx[n_train:]]
    return Split(root=root, class_names=tuple(class_names), train=tuple(sorted(train)), val=tuple(sorted(val)),
                 test=tuple(sorted(test)), seed=seed, train_ratio=train_ratio, val_fraction=val_fraction)


def save_split(split: Split, run_dir: str | Path) -> Path:
    return write_json_atomic(Path(run_dir) / SPLIT_FILE, split.to_dict())


def load_split(path: str | Path) -> Split:
    path = Path(path)
    if path.is_dir():
        path = path / SPLIT_FILE
    if not path.is_file():
        raise DataError(f"No split file at '{path}'; it is written by `compress train`/`distill` into the run folder.")
    try:
        d = read_json(path)
        split = Split(root=d["root"], class_names=tuple(d["class_names"]), train=tuple(d["train"]),
                      val=tuple(d["val"]), test=tuple(d["test"]), seed=int(d["seed"]),
                      train_ratio=d.get("train_ratio"), val_fraction=float(d.get("val_fraction", 0.0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"Split file '{path}' is corrupt ({exc}); delete it to make a new split.") from exc
    if d.get("hash") and d["hash"] != split.hash:
        raise DataError(f"Split file '{path}' was edited (hash mismatch); restore it or start a new run.")
    return split


def find_split_file(start: str | Path) -> Path | None:
    """The nearest ``split.json`` in ``start`` or its parents (checkpoints live below their run)."""
    p = Path(start).resolve()
    for d in [p, *p.parents]:
        if (d / SPLIT_FILE).is_file():
            return d / SPLIT_FILE
    return None
