"""The option groups commands subscribe to; each option is declared here once, with the config key it fills.

Defaults shown in ``--help`` are the config dataclasses' own (an option left out means "not given":
a ``--config`` file or, on ``--resume``, the run's saved config decides).
"""
from __future__ import annotations

import dataclasses
from typing import Any, List, Optional

from compress.cli.options import Flag, Float, Group, Int, Opt, Str, Strs, opt


def _default(cls: type, name: str) -> str:
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    return "none" if value is None else str(value)


def _data(name: str) -> str:
    from compress.data.bundle import DataConfig

    return _default(DataConfig, name)


def _train(name: str, cfg=None) -> str:
    from compress.engine.train_config import AUTO_EPOCHS_TEXT, AUTO_LR_TEXT, AUTO_WARMUP_TEXT, TrainConfig

    value = getattr(cfg if cfg is not None else TrainConfig(), name)
    if value is None:
        return {"lr": AUTO_LR_TEXT, "warmup_epochs": AUTO_WARMUP_TEXT, "epochs": AUTO_EPOCHS_TEXT}.get(name, "none")
    return str(value)


def _o(name: str, *flags: str, help: str, key: str | None = None, type: Any = Str, shown: Any = True,
       deprecated: tuple[str, ...] = (), default: Any = None) -> Opt:
    return opt(name, *flags, help=help, key=key, type=type, show_default=shown, deprecated=deprecated,
               default=default)


DATA = Group("data", (
    _o("data", "--data", key="data.data", help="Class-per-folder image root.", shown="embedded scikit-learn digits"),
    _o("train_ratio", "--train-ratio", key="data.train_ratio", type=Float, shown=_data("train_ratio"),
       help="Share of each class used for training, e.g. 0.2."),
    _o("val_fraction", "--val-fraction", key="data.val_fraction", type=Float, shown=_data("val_fraction"),
       help="Share of the training part held out to pick the best epoch."),
    _o("val_dir", "--val-dir", key="data.val_dir", help="Explicit validation folder (instead of carving from --data).",
       shown=False),
    _o("test_dir", "--test-dir", key="data.test_dir", help="Explicit test folder (instead of --train-ratio).",
       shown=False),
    _o("split", "--split-from", key="data.split", shown=False,
       help="Reuse the train/val/test split of a run: its folder, a checkpoint in it, or its split.json."),
    _o("image_size", "--image-size", key="data.image_size", type=Int, help="Square input size in pixels (8–4096).",
       shown="the data's: digits 16, folders min(native, 64); a given teacher's"),
    _o("workers", "--workers", key="data.workers", type=Int, shown=_data("workers"),
       help="Data-loader worker processes (0 = load in the main process)."),
    _o("max_pixels", "--max-pixels", key="data.max_pixels", type=Int, shown="178,956,970",
       help="Largest image (height × width) read; larger files are skipped, unread, and listed in bad_files.txt."),
))

def train_group(cfg=None) -> Group:
    """The training options, showing the defaults of ``cfg`` (a TrainConfig; None → its class defaults)."""
    return Group("training", (
        _o("epochs", "--epochs", key="train.epochs", type=Int, shown=_train("epochs", cfg), help="Training epochs per model."),
        _o("batch_size", "--batch-size", key="train.batch_size", type=Int, shown=_train("batch_size", cfg),
           help="Images per batch."),
        _o("lr", "--lr", key="train.lr", type=Float, shown=_train("lr", cfg),
           help="Peak learning rate (scaled by the batch size only when left automatic)."),
        _o("optimizer", "--optimizer", key="train.optimizer", shown=_train("optimizer", cfg), help="sgd or adamw."),
        _o("schedule", "--schedule", key="train.schedule", shown=_train("schedule", cfg),
           help="cosine, step, multistep or constant."),
        _o("warmup_epochs", "--warmup-epochs", key="train.warmup_epochs", type=Float, shown=_train("warmup_epochs", cfg),
           help="Linear learning-rate warm-up, in epochs."),
        _o("label_smoothing", "--label-smoothing", key="train.label_smoothing", type=Float,
           shown=_train("label_smoothing", cfg), help="Label smoothing of the CE term (0 = off)."),
        _o("grad_clip", "--grad-clip", key="train.grad_clip", type=Float, shown=_train("grad_clip", cfg),
           help="Clip the global gradient norm to this value (0 = off)."),
        _o("seed", "--seed", key="train.seed", type=Int, shown=_train("seed", cfg),
           help="Seed of the split, the augmentation and the initialisation."),
    ))


TRAIN = train_group()

DEVICE = Group("device", (
    _o("device", "--device", key="train.device", shown=_train("device"), help="auto, cpu, cuda or cuda:N."),
    _o("amp", "--amp", key="train.amp", shown=_train("amp"),
       help="Mixed precision: auto (bf16 on CUDA and on CPUs with native bf16, fp16 on older GPUs), off, bf16, fp16."),
    _o("memory_format", "--memory-format", key="train.memory_format", shown=_train("memory_format"),
       help="auto (NHWC on CUDA and on AMX CPUs under bf16), channels_last or contiguous."),
    _o("data_path", "--data-path", key="train.data_path", shown=_train("data_path"),
       help="How training batches are made: cache (decoded pixels held once, augmented in batches where the model "
            "trains, on the GPU there), loader (per image, in --workers processes) or auto (cache when the images "
            "are cached and the batches are made on the GPU or in the main process)."),
    _o("compile", "--compile", key="train.compile", type=Flag, default=False, shown=False,
       help="torch.compile the student and the teacher (the first epoch pays the compilation)."),
    _o("sync_bn", "--sync-bn", key="train.sync_bn", type=Flag, default=False, shown=False,
       help="Under torchrun: BatchNorm statistics over the global batch."),
    _o("log_every", "--log-every", key="train.log_every", type=Int, shown=_train("log_every"),
       help="Steps between reads of the running loss (the only host syncs of a step loop)."),
    _o("log", "--log", key="train.log", shown=_train("log"),
       help="none or tensorboard (event files in RUN/tensorboard; every run also writes training_curves.png)."),
))

METHOD = Group("method", (
    _o("method_param", "--method-param", "-p", key="method_params", type=Strs, shown=False,
       help="Method hyper-parameter KEY=VALUE (repeatable); `compress methods NAME` lists them."),
))

INIT = Group("initial weights", (
    _o("pretrained", "--pretrained", key="pretrained", type=Flag, default=False, shown=False,
       help="Start from hub weights (needs internet; else use --weights)."),
    _o("weights", "--weights", key="weights", shown=False,
       help="Initial weights: a .safetensors/.pth file or an installed weights package (package:NAME)."),
))

OUTPUT = Group("output", (
    _o("out", "--out", "-o", key="out", help="Run folder.", shown="runs/<command>-<timestamp>"),
    _o("resume", "--resume", key="resume", type=Flag, default=False, shown=False,
       help="Continue the run in --out with its saved config (see `--resume` in the README)."),
    _o("config", "--config", help="YAML/TOML/JSON config file (sections data:, train:); flags override it.",
       shown=False),
    _o("json", "--json", type=Flag, default=False, shown=False, help="Print the result as JSON instead of tables."),
))

TEACHER = Group("teacher", (
    _o("teacher", "--teacher", key="teacher", type=Strs, shown=False,
       help="Teacher checkpoint (repeat for a weighted ensemble); none → one is trained first."),
    _o("teacher_weight", "--teacher-weight", key="teacher_weights", type=Optional[List[float]], shown=False,
       help="Ensemble weight per --teacher, in order.", deprecated=("--teacher-weights",)),
    _o("teacher_arch", "--teacher-arch", key="teacher_arch", help="Architecture of a teacher trained here.",
       shown="resnet18 on folders, cifar_resnet20 on the digits"),
    _o("teacher_epochs", "--teacher-epochs", key="teacher_epochs", type=Int, shown="--epochs",
       help="Epochs for that teacher."),
    _o("teacher_init_weights", "--teacher-init-weights", key="teacher_init_weights", shown=False,
       help="Initial weights for that teacher (file or package:NAME)."),
))

UNLABELED = Group("unlabelled data", (
    _o("unlabeled", "--unlabeled", key="unlabeled", shown=False,
       help="Folder of unlabelled images (kd-hr: teacher KD + high-rankness term on them)."),
))


def method_option(default: str, choices: str) -> Group:
    return Group("method", (_o("method", "--method", key="method", shown=default, help=f"Method: {choices}."),))


def model_option(name: str, flags: tuple[str, ...], help: str, shown: str, deprecated: tuple[str, ...] = ()) -> Group:
    return Group("model", (_o(name, *flags, key="student", help=help, shown=shown, deprecated=deprecated),))

