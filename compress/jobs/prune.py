"""``compress prune``: a pruned student that inherits the teacher's weights, cut to a budget of MACs,
parameters, or latency on a device profile (estimated) or on this CPU (measured, ``--measure``),
and optionally recovered by distillation from the unpruned model (``--recover``).

The result is a run folder whose ``checkpoints/best`` is a normal checkpoint: its manifest records the
pruned structure (``model_kwargs.pruned``), so every command (evaluate, export, profile, distill
``--teacher``/``--student``) rebuilds it from the zoo name and loads it from safetensors.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from compress.engine.config import TrainConfig
from compress.engine.progress import ProgressSink
from compress.errors import UserInputError
from compress.io import to_jsonable, write_json_atomic
from compress.jobs.rundir import open_run
from compress.models.prune import PruneConfig, PruneStep


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
        if self.precision not in ("fp32", "fp16", "int8"):
            raise UserInputError(f"--precision must be fp32, fp16 or int8, got '{self.precision}'.")


@dataclass
class PruneResult:
    run_dir: str
    checkpoint: str
    budget: str
    steps: list[PruneStep]
    before: dict[str, Any]
    after: dict[str, Any]
    margin: float  # how far under the budget the result is (same unit as the budget)
    test_oa_before_recovery: float | None = None
    recovered: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


class _Budget:
    """Measures a model the way the budget is stated and says whether it is met."""

    def __init__(self, cfg: PruneJobConfig, shape: tuple[int, ...]) -> None:
        self.cfg, self.shape, self.base = cfg, shape, {}
        self.profile = None
        if cfg.target:
            from profiles.device import load_device_profile

            self.profile = load_device_profile(cfg.target)
            self.profile.mode(cfg.power_mode)

    def measure(self, model: torch.nn.Module) -> dict[str, Any]:
        from profiles.torch_count import analyze_torch

        a = analyze_torch(copy.deepcopy(model).to("meta"), self.shape)
        info = {"params": a.params, "macs": a.macs}
        if self.cfg.latency_ms is not None:
            info["latency_ms"] = self._measured(model) if self.cfg.measure else self._estimated(a)
        return info

    def _estimated(self, analysis) -> float:
        from profiles.estimate import estimate_latency

        return round(estimate_latency(analysis, self.profile, self.cfg.precision, self.cfg.power_mode).latency_ms, 4)

    def _measured(self, model: torch.nn.Module) -> float:
        import io

        import numpy as np

        from runtime.latency import measure_latency
        from runtime.onnxrt import OnnxrtRunner

        buf = io.BytesIO()
        torch.onnx.export(copy.deepcopy(model).eval(), (torch.zeros(self.shape),), buf, input_names=["input"],
                          output_names=["logits"], opset_version=17, dynamo=False)
        feeds = {"input": np.random.default_rng(0).standard_normal(self.shape).astype(np.float32)}
        return round(measure_latency(OnnxrtRunner(buf.getvalue(), providers="cpu"), feeds, 5, 30).p50_ms, 4)

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


def _calibration(ckpt, batches: int):
    from torch.utils.data import DataLoader

    from compress.data.sources import checkpoint_dataset

    ds = checkpoint_dataset(ckpt.path, ckpt.manifest, part="train").dataset
    return [(x, y) for (x, y), _ in zip(DataLoader(ds, batch_size=32, shuffle=False), range(batches))]


def run_prune(cfg: PruneJobConfig, progress: ProgressSink | None = None) -> PruneResult:
    """Prune ``cfg.checkpoint`` to the budget into ``cfg.out``; with ``recover`` distil it from the original."""
    from compress.checkpoint import save_checkpoint
    from compress.data.split import find_split_file, load_split, save_split
    from compress.models import create_model
    from compress.models.checkpoint import load_checkpoint
    from compress.models.prune import prune_model
    from compress.models.structure import structure_of

    ckpt = load_checkpoint(cfg.checkpoint)
    man = ckpt.manifest
    shape = (1, man.in_chans, man.image_size, man.image_size)
    model = ckpt.model
    budget = _Budget(cfg, shape)
    budget.base = base = budget.measure(model)
    resolved = to_jsonable(cfg)
    with open_run(cfg.out, "prune", cfg.resume, resolved, device=cfg.train.device) as run:
        calib = _calibration(ckpt, cfg.prune.calib_batches) if cfg.prune.importance == "taylor" else None
        steps = prune_model(model, torch.zeros(shape), cfg.prune, budget, calib)
        met, final = budget(model)
        if not met:
            key = "latency_ms" if cfg.latency_ms is not None else "macs" if cfg.macs is not None else "params"
            best = min(s.info[key] for s in steps)
            unit = " ms" if key == "latency_ms" else f" {key} ({best / base[key]:.3f} of the model)"
            raise UserInputError(f"{budget.label()} cannot be met by pruning {man.architecture} up to "
                                 f"{cfg.prune.max_ratio:.0%} of its channels; the smallest reached was {best:g}{unit} — "
                                 "raise the budget or start from a smaller model.")
        reference = create_model(man.architecture, man.num_classes, man.in_chans,
                                 **{k: v for k, v in man.model_kwargs.items() if k != "pruned"})
        kwargs = {**man.model_kwargs, "pruned": structure_of(model, reference)}
        pruned_man = man.replace(model_kwargs=kwargs, role="pruned", method="prune",
                                 metrics={"pruned_from": str(ckpt.path), "budget": budget.label(), **final})
        split = find_split_file(ckpt.path)
        if split is not None:
            save_split(load_split(split), run)
        out_ckpt = save_checkpoint(run / "checkpoints" / "best", model, pruned_man)
        result = PruneResult(run_dir=str(run), checkpoint=str(out_ckpt), budget=budget.label(), steps=steps,
                             before=base, after=final, margin=round(budget.margin(final), 6))
        if split is not None:
            from compress.evaluation.checkpoint import evaluate_checkpoint

            result.test_oa_before_recovery = evaluate_checkpoint(out_ckpt, out=run / "evaluation").metrics["oa"]
        if cfg.recover:
            result.recovered = _recover(cfg, ckpt, out_ckpt, run, progress)
        write_json_atomic(run / "prune.json", result.to_dict())
    return result


def _recover(cfg: PruneJobConfig, ckpt, pruned: Path, run: Path, progress) -> dict[str, Any]:
    """Distil the pruned student from the unpruned checkpoint, on the checkpoint's own data and split."""
    from compress.data.bundle import DataConfig
    from compress.jobs.classification import JobConfig, run_distill
    from compress.jobs.teacher_data import recorded_data

    data = recorded_data(ckpt.path, {"image_size": ckpt.manifest.image_size}) or DataConfig(
        image_size=ckpt.manifest.image_size)
    job = JobConfig(data=data, train=cfg.train, student=str(pruned), teacher=(str(ckpt.path),), method=cfg.method,
                    method_params=cfg.method_params, baseline=False, out=str(run / "recover"), resume=cfg.resume)
    return run_distill(job, progress=progress).to_dict()
