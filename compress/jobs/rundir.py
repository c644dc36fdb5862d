"""Run folders, in one place for every job: creating one, refusing to overwrite, ``--resume`` that
restores the saved ``config.json`` (and names every flag that would change it), and leaving nothing
behind when a run fails before it trained anything.

A run folder holds ``config.json`` (the resolved config: what ``--resume`` restores), ``split.json``
and, per stage, ``checkpoints/``, ``history.csv``, ``metrics.json``.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, TypeVar

from compress.config import build_config
from compress.errors import UserInputError
from compress.io import read_json, to_jsonable, write_json_atomic
from compress.lock import LOCK_FILE, lock_folder, release_folder

CONFIG_FILE = "config.json"
C = TypeVar("C")

# Keys that may differ from the saved config on --resume: where and how fast the run executes, and
# --epochs to extend it (never to shorten it). Anything else would silently change the recipe.
SAFE_ON_RESUME = ("train.device", "train.amp", "train.compile", "train.memory_format", "train.log_every",
                  "train.log", "train.data_path", "data.max_pixels",
                  "data.workers", "workers", "train.epochs", "out", "resume")
FLAG_NAMES = {"train.batch_size": "--batch-size", "teacher_weights": "--teacher-weight", "student": "--student/--model",
              "method_params": "-p/--method-param", "data.data": "--data", "unlabeled_dir": "--unlabeled"}


def default_out(command: str) -> str:
    return f"runs/{command}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 0.1}} → {"train.lr": 0.1}; method_params stays one value (it is one flag)."""
    out: dict[str, Any] = {}
    for k, v in (obj or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k not in ("method_params", "model_kwargs", "stage1_params") and \
                not key.startswith("method_params"):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def flag_name(key: str) -> str:
    return FLAG_NAMES.get(key, "--" + key.rsplit(".", 1)[-1].replace("_", "-"))


def _merge_given(saved: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``saved`` with the explicitly given values written over it (sections merged key by key)."""
    merged = json.loads(json.dumps(saved))
    for k, v in given.items():
        k = str(k).replace("-", "_")
        if isinstance(v, Mapping) and isinstance(merged.get(k), dict):
            merged[k] = _merge_given(merged[k], v)
        else:
            merged[k] = v
    return merged


def restore_config(cls: type[C], run: Path, given: Mapping[str, Any]) -> C:
    """The config saved in ``run/config.json`` with the safe keys of ``given`` applied.

    A given value that differs from the saved one is refused, naming each flag, unless it is one of
    :data:`SAFE_ON_RESUME`; ``--epochs`` may grow (extend the run) but not shrink.
    """
    saved = read_json(run / CONFIG_FILE)
    candidate = to_jsonable(build_config(cls, _merge_given(saved, given), section=f"{run / CONFIG_FILE}"))
    before, after = _flat(saved), _flat(candidate)
    changed = [k for k in after if k in before and after[k] != before[k] and k not in SAFE_ON_RESUME]
    if changed:
        parts = [f"{flag_name(k)} {after[k]!r} (saved {before[k]!r})" for k in changed]
        raise UserInputError(
            f"--resume continues '{run}' with the config it was started with, but {', '.join(parts)} "
            "differ from it; drop them (only --epochs to extend the run, --device, --amp, --workers, --compile, "
            "--memory-format, --data-path and --log-every may change), "
            "or start a new run with another --out.")
    if after.get("train.epochs") is not None and before.get("train.epochs") is not None \
            and int(after["train.epochs"]) < int(before["train.epochs"]):
        raise UserInputError(f"--epochs {after['train.epochs']} is fewer than the run's {before['train.epochs']}; "
                             "--epochs can only extend a resumed run.")
    return build_config(cls, {**candidate, "resume": True}, section=f"{run / CONFIG_FILE}")


def prepare_config(cls: type[C], raw: Mapping[str, Any], command: str) -> C:
    """``cls`` from the merged config file + flags; with ``resume`` it is the run's saved config instead."""
    if raw.get("resume"):
        out = raw.get("out")
        if not out:
            raise UserInputError("--resume needs --out RUN_DIR naming the run to continue.")
        run = Path(out)
        if not (run / CONFIG_FILE).is_file():
            raise UserInputError(f"--resume: '{run}' is not a run folder (no {CONFIG_FILE}); check --out.")
        return restore_config(cls, run, raw)
    cfg = build_config(cls, raw, section="config")
    if getattr(cfg, "out", None) is None:
        cfg = dataclasses.replace(cfg, out=default_out(command))  # type: ignore[type-var]
    return cfg


@contextmanager
def open_run(out: str | None, command: str, resume: bool, config: Any, device: str = "auto") -> Iterator[Path]:
    """The run folder for a job, created (or checked for ``--resume``), ``config.json`` written first.

    A new run that fails before any checkpoint exists is removed again, so the same command can simply
    be re-run; a folder that existed (resume, or one that was empty) is never removed. Under
    ``torchrun`` the process group is joined here; rank 0 makes the folder while the others wait.
    """
    from compress.engine import distributed as dist
    from compress.hardware import resolve_device

    dist.init(resolve_device(device))
    if not dist.is_main():
        dist.barrier()  # rank 0 checks and creates the folder
        if out is None or not (Path(out) / CONFIG_FILE).is_file():
            raise UserInputError("rank 0 could not open the run folder; see its error.")
        yield Path(out)
        return
    if out is None:
        if resume:
            raise UserInputError("--resume needs --out RUN_DIR naming the run to continue.")
        out = default_out(command)
    run = Path(out)
    owned = lock_folder(run) if run.is_dir() else False  # first: a folder in use is named as such
    try:
        if resume:
            if not (run / CONFIG_FILE).is_file():
                raise UserInputError(f"--resume: '{run}' is not a run folder (no {CONFIG_FILE}); check --out.")
        elif run.exists() and (not run.is_dir() or any(p.name != LOCK_FILE for p in run.iterdir())):
            raise UserInputError(f"Run folder '{run}' already exists and is not empty; pass --resume to continue "
                                 "it or choose a new --out.")
        created = not run.exists()
        run.mkdir(parents=True, exist_ok=True)
        owned = lock_folder(run) or owned
        if not resume:
            write_json_atomic(run / CONFIG_FILE, to_jsonable(config))
        dist.barrier()
        try:
            yield run
        except BaseException:
            if not resume and not any(run.rglob("train_state.json")):
                _empty(run, remove=created)
            raise
    finally:
        if owned:
            release_folder(run)


def _empty(run: Path, remove: bool) -> None:
    """Undo a run that never trained: what it wrote goes (the folder too when this run created it)."""
    if remove:
        release_folder(run)
        shutil.rmtree(run, ignore_errors=True)
        return
    for p in run.iterdir():
        if p.name != LOCK_FILE:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
