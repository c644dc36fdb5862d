"""Scoring a saved checkpoint: classification metrics or embedding retrieval/kNN/clustering, on its run's
saved split or on another folder (the images come from :func:`compress.data.sources.checkpoint_dataset`)."""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from compress.data.sources import checkpoint_dataset
from compress.data.split import find_split_file
from compress.errors import DataError, UserInputError
from compress.evaluation.classifier import evaluate_classifier, write_classification_outputs
from compress.evaluation.embedding import TASKS, EmbeddingEvalResult, embed_dataset, score_embeddings, write_outputs
from compress.hardware import resolve_device
from compress.io import to_jsonable, write_json_atomic
from compress.models.restore import load_checkpoint


@dataclass
class EvaluationResult:
    checkpoint: str
    data: str
    split: str | None
    n: int
    metrics: dict[str, Any]
    out_dir: str

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def evaluate_checkpoint(checkpoint: str | Path, data: str | None = None, split: str = "test", device: str = "auto",
                        out: str | Path | None = None, batch_size: int = 256) -> EvaluationResult:
    """Classification metrics of ``checkpoint`` on its saved ``split`` (default) or on every image of folder ``data``."""
    dev = resolve_device(device)
    ck = load_checkpoint(checkpoint, device=dev)
    names = list(ck.manifest.class_names)
    if data is None and split not in ("train", "val", "test"):
        raise DataError(f"--split must be train, val or test, got '{split}'.")
    if data is None and find_split_file(ck.path) is None:
        raise DataError(f"No split.json above '{ck.path}'; pass --data DIR to evaluate on a folder.")
    found = checkpoint_dataset(ck.path, ck.manifest, data=data, part=None if data is not None else split)
    ds = found.dataset
    metrics = evaluate_classifier(ck.model, ds, names, dev, batch_size=batch_size)
    label = found.part
    split_file = find_split_file(ck.path)
    where = str(split_file.parent) if data is None else str(data)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = split_file.parent if split_file else ck.path
    out_dir = Path(out) if out else run_dir / "evaluations" / f"{label or Path(str(data)).name}-{stamp}"
    out_dir.mkdir(parents=True, exist_ok=True)
    result = EvaluationResult(checkpoint=str(ck.path), data=where, split=label, n=len(ds), metrics=metrics.to_dict(),
                              out_dir=str(out_dir))
    write_json_atomic(out_dir / "metrics.json", result.to_dict())
    write_classification_outputs(out_dir, metrics, names)
    return result


def _checkpoint_sets(checkpoint: str, data: str | None, query_split: str, gallery_split: str):
    """The checkpoint's model and (query, gallery) data sets preprocessed as its manifest says."""
    ck = load_checkpoint(checkpoint)
    if data is None and find_split_file(ck.path) is None:
        raise DataError(f"No split.json above '{checkpoint}' says which images to use; pass the data folder.")
    q = checkpoint_dataset(ck.path, ck.manifest, data=data, part=query_split).dataset
    g = q if gallery_split == query_split else checkpoint_dataset(ck.path, ck.manifest, data=data,
                                                                  part=gallery_split).dataset
    return ck, q, g


def evaluate_embeddings(checkpoint: str, task: str = "all", *, data: str | None = None, query_split: str = "test",
                        gallery_split: str = "train", metric: str = "euclidean",
                        ks: Sequence[int] = (1, 5, 10, 20), knn_k: int = 10, cross_checkpoint: str | None = None,
                        cross_data: str | None = None, out_dir: str | None = None, device: str = "cpu",
                        batch_size: int = 128, seed: int = 0) -> EmbeddingEvalResult:
    """Embed the run's ``query_split`` (default test) and ``gallery_split`` (default train) and score them.

    ``data`` overrides the image folder recorded in the run's ``split.json`` (``all`` as split part
    uses every image). With ``cross_checkpoint`` (the second-source network G) and ``cross_data``
    (the second-source folder, same relative paths), retrieval adds ``s1->s2``, ``s2->s1`` and
    ``s2->s2``. Outputs go to ``out_dir`` when given.
    """
    if task not in TASKS:
        raise UserInputError(f"task must be one of {', '.join(TASKS)}, got '{task}'.")
    ck, q, g = _checkpoint_sets(checkpoint, data, query_split, gallery_split)
    qe = embed_dataset(ck.model, q, device, batch_size=batch_size)[:2]
    ge = qe if g is q else embed_dataset(ck.model, g, device, batch_size=batch_size)[:2]
    cross = None
    if cross_checkpoint is not None:
        if cross_data is None:
            raise UserInputError("cross-source evaluation needs the second source's folder too (cross_data).")
        ck2, q2, g2 = _checkpoint_sets(cross_checkpoint, cross_data, query_split, gallery_split)
        from compress.data.paired import pair_stem

        if [pair_stem(k) for k in q2.keys] != [pair_stem(k) for k in q.keys]:
            raise DataError("the two sources do not hold the same images in the same split; use paired folders.")
        q2e = embed_dataset(ck2.model, q2, device, batch_size=batch_size)[:2]
        g2e = q2e if g2 is q2 else embed_dataset(ck2.model, g2, device, batch_size=batch_size)[:2]
        cross = {"s1->s2": (qe, g2e), "s2->s1": (q2e, ge), "s2->s2": (q2e, g2e)}
    result = score_embeddings(qe, ge, task, metric=metric, ks=ks, knn_k=knn_k, seed=seed, cross=cross)
    result.checkpoint = str(ck.path)
    return write_outputs(result, out_dir) if out_dir is not None else result
