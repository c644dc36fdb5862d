"""The one config merge: a config file (sections ``data:``/``train:`` plus top-level keys; ``data: PATH``
is short for ``data: {data: PATH}``) overridden by the values given on the command line, then typed
(unknown keys rejected) — or, with ``resume``, the run's saved config (:mod:`compress.jobs.rundir`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, TypeVar

from compress.config import load_config_file
from compress.jobs.rundir import prepare_config

C = TypeVar("C")
LISTS = ("teacher", "teacher_weights")  # keys a config file may give as one value or a list


def _norm(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).replace("-", "_"): (_norm(v) if isinstance(v, Mapping) and k != "method_params" else v)
            for k, v in mapping.items()}


def merge_config(file_values: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """File values overridden by ``given`` (nested by section, only what was given); sections merge key by key."""
    base = _norm(file_values)
    if isinstance(base.get("data"), str):
        base["data"] = {"data": base["data"]}
    for key in LISTS:
        if isinstance(base.get(key), (str, float, int)):
            base[key] = [base[key]]
    for key, value in _norm(given).items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def load_job_config(cls: type[C], given: Mapping[str, Any], *, command: str, config_file: str | Path | None = None,
                    defaults: Mapping[str, Any] | None = None) -> C:
    """``cls`` from ``config_file`` + ``given`` (+ command ``defaults`` for keys neither sets, new runs only)."""
    raw = merge_config(load_config_file(config_file) if config_file else {}, given)
    if defaults and not raw.get("resume"):
        raw = merge_config(defaults, raw)  # section by section: what the file or a flag gives wins
    return prepare_config(cls, raw, command)


def job_config_from_mapping(values: Mapping[str, Any]):
    """A ``JobConfig`` from a config-file mapping (e.g. a paper preset); unknown keys in any section and
    ``method_params`` the method does not have are rejected."""
    from compress.config import build_config
    from compress.jobs.train_distill import JobConfig
    from compress.methods import build_method_params

    job = build_config(JobConfig, merge_config(values, {}), section="config")
    build_method_params(job.method, job.method_params)
    return job
