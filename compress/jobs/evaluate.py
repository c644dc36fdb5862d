"""The job behind ``compress evaluate``: a checkpoint (classification or embedding tasks) or an exported
``.onnx`` classifier, on its run's split or a folder. ``TASKS`` names what can be asked; bad combinations are refused here, not in the CLI."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.errors import UserInputError

TASKS = ("classification", "retrieval", "clustering", "knn", "all")


@dataclass(frozen=True)
class EvaluateConfig:
    """Everything ``compress evaluate`` accepts (``ks``: P@k / mAP@k cut-offs)."""

    model: str  # checkpoint, run folder or exported .onnx
    data: str | None = None
    split: str = "test"
    device: str = "auto"
    out: str | None = None
    task: str = "classification"
    metric: str = "euclidean"
    ks: tuple[int, ...] = (1, 5, 10, 20)
    knn_k: int = 10
    cross_checkpoint: str | None = None
    cross_data: str | None = None
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UserInputError(f"--task must be {', '.join(TASKS[:-1])} or {TASKS[-1]}, got '{self.task}'.")
        if self.knn_k < 1 or any(k < 1 for k in self.ks) or self.batch_size < 1:
            raise UserInputError("--knn-k, --k and --batch-size must be ≥ 1.")


def check_out(out: str | None) -> None:
    """``--out`` takes a new or empty folder: an evaluation never writes over a run's files (its
    ``metrics.json`` is the training record) or an earlier evaluation's."""
    if out is None:
        return
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UserInputError(f"--out '{out}' is a file; give a new folder for the evaluation's files.")
    if path.is_dir() and any(path.iterdir()):
        raise UserInputError(f"--out '{out}' already holds files (a run's or an earlier evaluation's); give a new "
                             "folder, or leave --out out: evaluations go to RUN/evaluations/<name>-<time>/.")


def run_evaluate(cfg: EvaluateConfig) -> Any:
    """``EvaluationResult`` (classification) or ``EmbeddingEvalResult`` (embedding tasks)."""
    check_out(cfg.out)
    if str(cfg.model).lower().endswith(".onnx"):
        if cfg.task != "classification":
            raise UserInputError("an exported .onnx file is scored for classification; embedding tasks take the "
                                 "checkpoint (compress evaluate CKPT --task retrieval).")
        from export.evaluate import evaluate_onnx

        return evaluate_onnx(cfg.model, data=cfg.data, split=cfg.split, out=cfg.out)
    if cfg.task == "classification":
        from compress.evaluation.saved_model import evaluate_checkpoint

        return evaluate_checkpoint(cfg.model, data=cfg.data, split=cfg.split, device=cfg.device, out=cfg.out,
                                   batch_size=cfg.batch_size)
    from compress.evaluation.saved_model import evaluate_embeddings
    from compress.hardware import resolve_device

    return evaluate_embeddings(cfg.model, cfg.task, data=cfg.data, query_split=cfg.split, metric=cfg.metric,
                               ks=cfg.ks, knn_k=cfg.knn_k, cross_checkpoint=cfg.cross_checkpoint,
                               cross_data=cfg.cross_data, out_dir=cfg.out, device=str(resolve_device(cfg.device)))
