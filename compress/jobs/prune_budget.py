"""A budget for structured pruning (a share of MACs or parameters, or a latency measured here or estimated
for a device profile) and the pruning to it, shared by ``compress prune`` and the default student of
``compress distill``; the jobs themselves live in :mod:`compress.jobs.prune`."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch

from compress.engine.train_config import TrainConfig
from compress.errors import UserInputError
from compress.models.prune import PruneConfig, PruneStep
from runtime.trtexec import PRECISIONS


@dataclass(frozen=True)
class PruneJobConfig:
    """A budget (exactly one of ``macs``, ``params``, ``latency_ms``), how to prune, and the optional recovery."""

    checkpoint: str = ""
    out: str | None = None
    macs: float | None = None  # share of the model's MACs to keep, e.g. 0.5
    params: float | None = None  # share of its parameters to keep
    latency_ms: float | None = None
    target: str | None = None  # device profile for the latency estimate
    power_mode: str | None = None
    precision: str = "fp16"
    measure: bool = False  # latency measured with ONNX Runtime on this CPU instead of estimated
    prune: PruneConfig = field(default_factory=PruneConfig)
    recover: bool = False
    baseline: bool = False  # with recover: also fine-tune the pruned network without the teacher, to compare
    method: str = "kd"
    method_params: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    resume: bool = False

    def __post_init__(self) -> None:
        budgets = [b for b in (self.macs, self.params, self.latency_ms) if b is not None]
        if len(budgets) != 1:
            raise UserInputError("give exactly one budget: --macs SHARE, --params SHARE or --latency-ms MS.")
        for name, share in (("--macs", self.macs), ("--params", self.params)):
            if share is not None and not 0 < share < 1:
                raise UserInputError(f"{name} is the share of the model to keep, in (0, 1) (e.g. 0.5); got {share}.")
        if self.latency_ms is not None and (self.latency_ms <= 0 or not (self.target or self.measure)):
            raise UserInputError("--latency-ms needs a positive budget and --target PROFILE (estimate) or --measure.")
        if self.baseline and not self.recover:
            raise UserInputError("--baseline is the pruned network fine-tuned without the teacher beside the "
                                 "recovery: add --recover.")
        if self.precision not in PRECISIONS:
            raise UserInputError(f"--precision must be fp32, fp16 or int8, got '{self.precision}'.")


class Budget:
    """Measures a model the way the budget is stated and says whether it is met."""

    def __init__(self, cfg: PruneJobConfig, shape: tuple[int, ...]) -> None:
        self.cfg, self.shape, self.base = cfg, shape, {}
        self.profile = None
        if cfg.target:
            from profiles.device import load_device_profile

            self.profile = load_device_profile(cfg.target)
            self.profile.mode(cfg.power_mode)

    def measure(self, model: torch.nn.Module) -> dict[str, Any]:
        from profiles.counting.torch_count import analyze_torch

        a = analyze_torch(copy.deepcopy(model).to("meta"), self.shape)
        info = {"params": a.params, "macs": a.macs}
        if self.cfg.latency_ms is not None:
            info["latency_ms"] = self._measured(model) if self.cfg.measure else self._estimated(a)
        return info

    def _estimated(self, analysis) -> float:
        from profiles.estimator.estimate import estimate_latency

        return round(estimate_latency(analysis, self.profile, self.cfg.precision, self.cfg.power_mode).latency_ms, 4)

    def _measured(self, model: torch.nn.Module) -> float:
        import numpy as np

        from compress.jobs.device_measure import timing_onnx
        from runtime.latency import measure_latency
        from runtime.onnxrt import OnnxrtRunner

        feeds = {"input": np.random.default_rng(0).standard_normal(self.shape).astype(np.float32)}
        return round(measure_latency(OnnxrtRunner(timing_onnx(model, self.shape), providers="cpu"), feeds, 5, 30).p50_ms, 4)

    def __call__(self, model: torch.nn.Module) -> tuple[bool, dict[str, Any]]:
        info = self.measure(model)
        c = self.cfg
        if c.macs is not None:
            return info["macs"] <= c.macs * self.base["macs"], info
        if c.params is not None:
            return info["params"] <= c.params * self.base["params"], info
        return info["latency_ms"] <= c.latency_ms, info

    def label(self) -> str:
        c = self.cfg
        if c.macs is not None:
            return f"MACs ≤ {c.macs:g} × {self.base['macs'] / 1e6:.2f} M"
        if c.params is not None:
            return f"params ≤ {c.params:g} × {self.base['params'] / 1e6:.3f} M"
        where = "ONNX Runtime on this CPU" if c.measure else f"{c.target} {c.power_mode or ''} {c.precision}".strip()
        return f"latency ≤ {c.latency_ms:g} ms ({where})"

    def margin(self, info: dict[str, Any]) -> float:
        c = self.cfg
        if c.macs is not None:
            return c.macs - info["macs"] / self.base["macs"]
        if c.params is not None:
            return c.params - info["params"] / self.base["params"]
        return c.latency_ms - info["latency_ms"]


def prune_to_budget(model: torch.nn.Module, shape: tuple[int, ...], cfg: PruneJobConfig, architecture: str,
                    calib: list | None = None) -> tuple[list[PruneStep], dict[str, Any], dict[str, Any], str, float]:
    """Prune ``model`` (input ``shape``) in place to ``cfg``'s budget: ``(steps, before, after, budget label,
    margin)``; raises ``UserInputError`` with the smallest size reached when the budget cannot be met."""
    from compress.models.prune import PRUNE_MODES

    budget = Budget(cfg, shape)
    budget.base = base = budget.measure(model)
    steps = PRUNE_MODES.get(cfg.prune.mode)(model, torch.zeros(shape), cfg.prune, budget, calib)
    met, final = budget(model)
    if not met:
        key = "latency_ms" if cfg.latency_ms is not None else "macs" if cfg.macs is not None else "params"
        best = min(s.info[key] for s in steps)
        unit = " ms" if key == "latency_ms" else f" {key} ({best / base[key]:.3f} of the model)"
        how = (f"removing every residual block of {architecture} whose shortcut is the identity"
               if cfg.prune.mode == "depth" else
               f"pruning {architecture} up to {cfg.prune.max_ratio:.0%} of its channels")
        raise UserInputError(f"{budget.label()} cannot be met by {how}; the smallest reached was {best:g}{unit} — "
                             "raise the budget or start from a smaller model.")
    return steps, base, final, budget.label(), round(budget.margin(final), 6)


def pruned_manifest(man, model: torch.nn.Module, source: str, label: str, final: dict[str, Any]):
    """The manifest of ``model`` pruned from the checkpoint ``man`` describes: its structure recorded in
    ``model_kwargs.pruned`` so every command rebuilds it from the zoo name."""
    from compress.models import create_model
    from compress.models.structure import structure_of

    reference = create_model(man.architecture, man.num_classes, man.in_chans,
                             **{k: v for k, v in man.model_kwargs.items() if k != "pruned"})
    kwargs = {**man.model_kwargs, "pruned": structure_of(model, reference)}
    return man.replace(model_kwargs=kwargs, role="pruned", method="prune",
                       metrics={"pruned_from": source, "budget": label, **final})


def calibration_batches(ckpt, batches: int) -> list:
    """The first ``batches`` batches of 32 training images of ``ckpt``'s own split (depth pruning's block
    contributions, Taylor importance)."""
    from torch.utils.data import DataLoader

    from compress.data.sources import checkpoint_dataset

    ds = checkpoint_dataset(ckpt.path, ckpt.manifest, part="train").dataset
    return [(x, y) for (x, y), _ in zip(DataLoader(ds, batch_size=32, shuffle=False), range(batches))]
