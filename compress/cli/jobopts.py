"""Options shared by ``compress train`` and ``compress distill``, turned into a ``JobConfig``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from compress.config import build_config, load_config_file
from compress.engine.jobs import JobConfig
from compress.errors import UserInputError

DATA_KEYS = {"data", "train_ratio", "val_fraction", "val_dir", "test_dir", "image_size", "normalize", "workers"}
TRAIN_KEYS = {"epochs", "batch_size", "lr", "optimizer", "schedule", "warmup_epochs", "weight_decay",
              "label_smoothing", "grad_clip", "amp", "device", "seed"}

# Typer options, reused by both commands (defaults None = "not given": the config file or built-in wins).
Data = typer.Option(None, "--data", help="Class-per-folder image root (default: embedded scikit-learn digits).")
TrainRatio = typer.Option(None, "--train-ratio", help="Share of each class used for training, e.g. 0.2 (default 0.8).")
ValFraction = typer.Option(None, "--val-fraction", help="Share of the training part held out to pick the best epoch.")
ValDir = typer.Option(None, "--val-dir", help="Explicit validation folder (instead of carving from --data).")
TestDir = typer.Option(None, "--test-dir", help="Explicit test folder (instead of --train-ratio).")
ImageSize = typer.Option(None, "--image-size", help="Square input size in pixels.")
Epochs = typer.Option(None, "--epochs", help="Training epochs per model.")
BatchSize = typer.Option(None, "--batch-size", help="Images per batch.")
Lr = typer.Option(None, "--lr", help="Peak learning rate.")
Optimizer = typer.Option(None, "--optimizer", help="sgd or adamw.")
Schedule = typer.Option(None, "--schedule", help="cosine, step, multistep or constant.")
Seed = typer.Option(None, "--seed", help="Seed of the split, the augmentation and the initialisation.")
Device = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N.")
Amp = typer.Option(None, "--amp", help="auto, off, bf16 or fp16 (CUDA only).")
Student = typer.Option(None, "--student", help="Model-zoo name of the student (default: chosen for the data).")
Method = typer.Option(None, "--method", help="Training/distillation method (see `compress distill --help`).")
MethodParam = typer.Option(None, "--method-param", "-p", help="Method hyper-parameter KEY=VALUE (repeatable).")
Out = typer.Option(None, "--out", "-o", help="Run folder (default runs/<command>-<timestamp>).")
Resume = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint.")
Config = typer.Option(None, "--config", help="YAML/TOML/JSON config file; flags override it.")
Pretrained = typer.Option(False, "--pretrained", help="Start from hub weights (needs internet; else use --weights).")
Weights = typer.Option(None, "--weights", help="Initial weights: .safetensors/.pth file or package:NAME.")
LabelSmoothing = typer.Option(None, "--label-smoothing", help="Label smoothing of the CE term (0 = off).")
GradClip = typer.Option(None, "--grad-clip", help="Clip the global gradient norm to this value (0 = off).")
WarmupEpochs = typer.Option(None, "--warmup-epochs", help="Linear learning-rate warm-up, in epochs.")
Workers = typer.Option(None, "--workers", help="Data-loader worker processes (0 = load in the main process).")
Json = typer.Option(False, "--json", help="Print the result as JSON instead of tables.")


def parse_params(items: Optional[List[str]]) -> dict[str, Any]:
    """``["temperature=4", "alpha=0.5"]`` → ``{"temperature": 4, "alpha": 0.5}`` (YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UserInputError(f"--method-param '{item}' must look like KEY=VALUE, e.g. temperature=4.")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = yaml.safe_load(v)
    return out


def build_job(config: Optional[Path], flags: dict[str, Any], method_params: dict[str, Any],
              default_method: str = "kd") -> JobConfig:
    """Merge the config file (sections ``data``/``train`` + top-level keys) with flags; flags win."""
    base: dict[str, Any] = load_config_file(config) if config else {}
    base = {k.replace("-", "_"): v for k, v in base.items()}
    raw_data = base.pop("data", None)
    data = {"data": raw_data} if isinstance(raw_data, str) else dict(raw_data or {})
    train = dict(base.pop("train", None) or {})
    for key, value in flags.items():
        if value is None or value is False and key in ("resume", "pretrained"):
            continue
        if key in DATA_KEYS:
            data[key] = value
        elif key in TRAIN_KEYS:
            train[key] = value
        else:
            base[key] = value
    if method_params:
        base["method_params"] = {**(base.get("method_params") or {}), **method_params}
    for key in ("teacher", "teacher_weights"):
        if isinstance(base.get(key), (str, float, int)):
            base[key] = [base[key]]
    base["data"], base["train"] = data, train
    base.setdefault("method", default_method)
    return build_config(JobConfig, base, section="config")
