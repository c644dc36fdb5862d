"""The cheap INT8 fixes: what ``--int8-budget`` tries on the all-INT8 file before it keeps any layer in float
(issue 33 item 4), in this order — cross-layer equalisation (of the FP32 source, before quantising), AdaRound
(learned rounding of the weights), then bias correction (the output-mean shift the rounding leaves). Each is ``auto`` (tried, kept only when it judges strictly better on
the budget's images), ``on`` (always applied) or ``off``. Without a budget (``--no-int8-fallback``) ``auto``
cannot be judged and means off: a fix is never applied unmeasured unless asked for."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from compress.errors import UserInputError
from export.sensitivity import CLE

FIX_CHOICES = ("auto", "on", "off")


@dataclass(frozen=True)
class Int8Fix:
    """One fix: its name in reports, its metadata key, its option and its ExportConfig field."""

    name: str
    key: str
    flag: str
    field: str


INT8_FIXES = (Int8Fix(CLE, "cle", "--int8-cle", "int8_cle"),
              Int8Fix("AdaRound", "adaround", "--int8-adaround", "int8_adaround"),
              Int8Fix("bias correction", "bias_correction", "--int8-bias-correction", "int8_bias_correction"))


def fix_choice(value: Any, flag: str) -> str:
    """auto | on | off; a recipe's true/false mean on/off; anything else is one line naming ``flag``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value not in FIX_CHOICES:
        raise UserInputError(f"{flag} must be auto, on or off, got '{value}'.")
    return value


def fix_modes(cfg: Any) -> dict[str, str]:
    """Fix name → auto | on | off, from the config's fields (validated)."""
    return {f.name: fix_choice(getattr(cfg, f.field, "auto"), f.flag) for f in INT8_FIXES}


def fix_functions(calib_x: np.ndarray, batch: int, reduce_range: bool) -> dict[str, Callable[[Path, Path], Any]]:
    """Fix name → ``fix(path, source)`` applying it in place to a quantised file of the FP32 ``source`` (CLE,
    which changes the source itself, is not one of them). AdaRound keeps what it learned per weight tensor, so
    the budget's later trials (a layer more in float each) replay it."""
    from export.adaround import adaround
    from export.bias_correction import correct_biases

    learned: dict[str, tuple[np.ndarray, float, float]] = {}
    return {"AdaRound": lambda path, src: adaround(src, path, calib_x, qmax=64 if reduce_range else 127, batch=batch,
                                                   cache=learned),
            "bias correction": lambda path, src: correct_biases(src, path, calib_x, batch=batch)}


def fix_stamps(modes: dict[str, str], applied: dict[str, Any], tried: dict[str, Any]) -> dict[str, str]:
    """Metadata key → what each fix did to the written file: its result, "tried, not kept (…)" or "off"."""
    out = {}
    for f in INT8_FIXES:
        done, trial = applied.get(f.name), tried.get(f.name)
        if done is not None:
            out[f.key] = done.describe()
        elif trial is not None:
            drop = "" if trial.drop is None else f", OA drop {trial.drop:.2f} pt"
            out[f.key] = f"tried, not kept (judged no better: {trial.disagreement:.2f} % of top-1 changed{drop})"
        else:
            out[f.key] = "off" if modes[f.name] != "on" else "on, not applicable"
    return out
