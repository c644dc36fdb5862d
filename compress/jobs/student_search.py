"""The student for a device: candidates made from the teacher (:mod:`compress.jobs.candidates`) ranked by
their ESTIMATED latency on the device and by an accuracy proxy, the winner distilled in full.

The proxy is a short distillation (``ProxyConfig``: KD for 3 epochs on half the training split) of every
candidate that meets the budget, scored on the validation split — never the test split. Candidates whose
proxy scores lie within one standard error of a difference of the best one (``keeps``, the rule that
picks checkpoints) are equal by the evidence; among them the fastest estimate wins. A candidate alone
within the budget wins without a proxy. The search is written to ``search/search.json`` and reused on
``--resume``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch import nn

from compress.data.bundle import DataBundle
from compress.data.dataset import SubsetDataset
from compress.engine.train_config import TrainConfig
from compress.errors import UserInputError
from compress.io import read_json, to_jsonable, write_json_atomic
from compress.jobs import formats as fmt
from compress.jobs.candidates import Candidate, Context, DeviceBudget, Estimator, build_candidates, unreachable

SEARCH_DIR = "search"  # inside the distill run folder


@dataclass(frozen=True)
class ProxyConfig:
    """The cheap accuracy proxy: ``method`` for ``epochs`` on ``share`` of the training split."""

    epochs: int = 3
    share: float = 0.5
    method: str = "kd"

    def __post_init__(self) -> None:
        if self.epochs < 1 or not 0 < self.share <= 1:
            raise UserInputError(f"the search proxy needs epochs ≥ 1 and a share in (0, 1]; got {self.epochs}, "
                                 f"{self.share}.")


@dataclass
class SearchResult:
    """Every candidate considered, the one chosen and why."""

    budget: DeviceBudget
    teacher: dict[str, Any]  # the teacher's own estimate at its input size
    candidates: list[Candidate]
    chosen: str
    checkpoint: str
    image_size: int
    why: str
    proxy: ProxyConfig = field(default_factory=ProxyConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SearchResult":
        return cls(budget=DeviceBudget(**d["budget"]), teacher=d["teacher"],
                   candidates=[Candidate(**c) for c in d["candidates"]], chosen=d["chosen"], checkpoint=d["checkpoint"],
                   image_size=d["image_size"], why=d["why"], proxy=ProxyConfig(**d["proxy"]))


def teacher_latency(model: nn.Module, shape: tuple[int, ...], budget: DeviceBudget) -> float:
    """The teacher's ESTIMATED latency (ms) on the budget's device and precision (calibrated when the device
    has a stored correction of the budget's ``architecture``)."""
    return Estimator.for_budget(budget, model, shape)(model, shape)[f"{budget.precision}_ms"]


def check_search_reachable(budget: DeviceBudget, model: nn.Module, shape: tuple[int, ...], architecture: str,
                           candidates: bool = True) -> None:
    """Raise the one-line error when the teacher itself meets ``budget`` or (``candidates``) no candidate kind
    can — before any training. Width, depth and resolution reach the same sizes whatever the weights, so an
    untrained teacher answers; a given teacher's candidates are built once, by the search, which raises the
    same line before any proxy trains."""
    estimate = Estimator.for_budget(budget, model, shape)
    own = budget.teacher_ms if budget.teacher_ms is not None else estimate(model, shape)[f"{budget.precision}_ms"]
    how = f"measured on {budget.remote}" if budget.teacher_ms is not None else "estimated"
    if own <= budget.latency_ms:
        raise UserInputError(f"the teacher itself is {how} at {own:g} ms ({budget.precision}) on {budget.target}, "
                             f"within --latency-ms {budget.latency_ms:g}: no student is needed for that budget. Give a "
                             "lower --latency-ms (without it: half the teacher's).")
    if not candidates:
        return
    built = build_candidates(Context(model.eval(), shape, architecture, budget, estimate, None))
    if not any(c.reached for c, _ in built):
        raise UserInputError(unreachable(budget, [c for c, _ in built]))


def proxy_data(data: DataBundle, share: float, seed: int) -> DataBundle:
    """``share`` of the training split (seeded) to train on, scored on the validation split (or, without one,
    on the training images left out); its ``test`` is that scoring split, so the proxy never sees the test."""
    rng = np.random.default_rng(seed)
    t = data.train
    order = rng.permutation(len(t.indices))
    n = max(1, int(round(share * len(order))))
    train = SubsetDataset(t.source, t.indices[np.sort(order[:n])], t.transform, t.normalize, t.seed, t.augment)
    score = data.val
    if score is None:
        rest = t.indices[np.sort(order[n:])] if n < len(order) else t.indices
        score = SubsetDataset(t.source, rest, data.test.transform, data.test.normalize, t.seed, False)
    return dataclasses.replace(data, train=train, val=score, test=score)


def choose(candidates: list[Candidate], precision: str, n_val: int) -> tuple[Candidate, str]:
    """The candidate to distil and why: the fastest of those whose proxy is within noise of the best."""
    from compress.engine.loop import keeps

    within = [c for c in candidates if c.reached]
    if len(within) == 1:
        return within[0], "the only candidate within the budget"
    within = [c for c in within if c.proxy_oa is not None]  # a proxy that diverged rules its candidate out
    if not within:
        raise UserInputError("every candidate's short distillation diverged (see search/*/ in the run folder); try a "
                             "lower --lr, or check the teacher: its accuracy is in the table of `compress evaluate`.")
    if len(within) == 1:
        return within[0], "the only candidate whose short distillation did not diverge"
    best = max(c.proxy_oa for c in within)
    tied = [c for c in within if keeps(c.proxy_oa, best, n_val)]
    win = min(tied, key=lambda c: (c.latency(precision), -c.proxy_oa))
    if len(tied) == 1:
        return win, f"the best proxy ({win.proxy_oa:.1%} vs ≤ {sorted(c.proxy_oa for c in within)[-2]:.1%})"
    return win, (f"the fastest of {len(tied)} candidates whose proxies are within one SE of the best "
                 f"({best:.1%} on {n_val} validation images)")


def _save(c: Candidate, model: nn.Module, teacher, folder: Path, label: str) -> str:
    """The candidate's initial weights as a checkpoint: a pruned teacher records its structure; a zoo network
    its own architecture (the run's preprocessing stays the teacher's: teacher and student see one batch)."""
    from compress.checkpoint import save_checkpoint
    from compress.jobs.candidates import ZOO
    from compress.jobs.prune_budget import pruned_manifest

    from compress.parallel import is_main

    where = folder / c.name.replace(":", "_") / "init"
    if not is_main():  # under torchrun rank 0 writes, the others read the same folder after the barrier
        return str(where)
    if c.name.startswith(ZOO):
        man = teacher.manifest.replace(architecture=c.name[len(ZOO):], model_kwargs={}, role="zoo", method="imagenet",
                                       metrics={"budget": label, **c.estimate})
    else:
        man = pruned_manifest(teacher.manifest, model, str(teacher.path), label, c.estimate)
    return str(save_checkpoint(where, model, man.replace(image_size=c.image_size)))


def measure_candidates(built: list[tuple[Candidate, nn.Module | None]], budget: DeviceBudget,
                       shape: tuple[int, ...], folder: Path) -> None:
    """Measure on ``budget.remote`` every candidate the (corrected) estimate puts within the budget; one
    whose measurement is over it no longer meets it. Raises the one line when none is left (``unreachable``)."""
    from compress.jobs.device_measure import DeviceMeter, measured_info

    meter = DeviceMeter(budget.remote, budget.precision, folder)
    for c, model in built:
        if not c.reached or model is None:
            continue
        est = c.latency(budget.precision)
        m = meter(model, (*shape[:-2], c.image_size, c.image_size), c.name)
        c.estimate.update(measured_info(m, budget.remote, budget.precision))
        if m.ms > budget.latency_ms:
            c.reached = False
            c.note = f"measured {m.ms:g} ms on {budget.remote} (estimated {est:g})"
    if not any(c.reached for c, _ in built):
        raise UserInputError(unreachable(budget, [c for c, _ in built]))


def search_student(teacher_ckpt: str, budget: DeviceBudget, run: Path, data_at: Callable[[int], DataBundle],
                   teacher_at: Callable[[DataBundle], nn.Module], train: TrainConfig, config: dict[str, Any],
                   proxy: ProxyConfig = ProxyConfig(), resume: bool = False, progress=None) -> SearchResult:
    """Build, estimate and proxy-train the candidates from ``teacher_ckpt``; return the chosen one.

    ``data_at(size)`` gives the run's data (same split) at an input size; ``teacher_at(data)`` the teacher
    fed that data. Raises ``UserInputError`` when no candidate meets the budget."""
    from torch.utils.data import DataLoader

    from compress.checkpoint import read_manifest
    from compress.engine.divergence import TrainingDiverged
    from compress.engine.stage import StageSpec, run_stage
    from compress.models.restore import load_checkpoint
    from compress.parallel import barrier, is_main

    folder = run / SEARCH_DIR
    record = folder / "search.json"
    if resume and record.is_file():
        return SearchResult.from_dict(read_json(record))
    teacher = load_checkpoint(teacher_ckpt)
    man = teacher.manifest
    shape = (1, man.in_chans, man.image_size, man.image_size)
    data = data_at(man.image_size)
    calib = [b for b, _ in zip(DataLoader(data.train, batch_size=32, shuffle=False), range(4))]
    estimator = Estimator.for_budget(budget, teacher.model, shape)
    ctx = Context(teacher.model.eval(), shape, man.architecture, budget, estimator, calib)
    built = build_candidates(ctx)
    candidates = [c for c, _ in built]
    if not any(c.reached for c in candidates):
        raise UserInputError(unreachable(budget, candidates))
    if budget.remote:
        measure_candidates(built, budget, shape, folder / "onnx")
    label = f"latency ≤ {budget.latency_ms:g} ms ({budget.target} {budget.power_mode or ''} {budget.precision})"
    for c, model in built:
        if c.reached:
            c.checkpoint = _save(c, model, teacher, folder, label)
    barrier()
    within = [c for c in candidates if c.reached]
    n_val = 0
    for c in within if len(within) > 1 else ():
        sample = proxy_data(data_at(c.image_size), proxy.share, train.seed)
        n_val = len(sample.val)
        init = read_manifest(c.checkpoint)
        spec = StageSpec(role=f"proxy {c.name}", arch=init.architecture, method=proxy.method,
                         train=dataclasses.replace(train, epochs=proxy.epochs), run_dir=Path(c.checkpoint).parent,
                         config=config, model_kwargs=init.model_kwargs, init={"weights": c.checkpoint}, resume=resume)
        try:
            res = run_stage(spec, sample, teacher=teacher_at(sample), progress=progress)
        except TrainingDiverged as exc:
            c.note = f"its short distillation diverged ({str(exc).split(';')[0]})"
            continue
        c.proxy_oa = float(res.metrics["val"]["oa"])
    win, why = choose(candidates, budget.precision, n_val)
    if budget.remote:
        from compress.jobs.device_measure import mode_note

        warn = mode_note(win.estimate.get("measured_mode"), budget.power_mode)
        why += f"; note: {warn}, so the measurements are that mode's" if warn else ""
    t_info = {**estimator(teacher.model, shape), "image_size": man.image_size}
    if budget.teacher_ms is not None:
        t_info.update(measured_ms=budget.teacher_ms, measured_on=budget.remote, measured_precision=budget.precision)
    result = SearchResult(budget=budget, teacher=t_info,
                          candidates=candidates,
                          chosen=win.name, checkpoint=win.checkpoint, image_size=win.image_size, why=why, proxy=proxy)
    if is_main():
        write_json_atomic(record, result.to_dict())
    return result


def search_line(s: SearchResult) -> str:
    """One line for the table: what was chosen for the device, and why."""
    p = s.budget.precision
    c = next(c for c in s.candidates if c.name == s.chosen)
    t = s.teacher.get("measured_ms") if "measured_ms" in c.estimate else s.teacher.get(f"{p}_ms")
    speed = f", {t / c.latency(p):.2f}× faster than the teacher's {t:.3g} ms" if t else ""
    how = f"measured on {s.budget.remote}" if "measured_ms" in c.estimate else "estimated"
    return (f"student for {s.budget.target}{'@' + s.budget.power_mode if s.budget.power_mode else ''} "
            f"≤ {s.budget.latency_ms:g} ms {p} ({how}): {c.name} — {c.description}; {c.latency(p):.3g} ms"
            f"{speed}, {c.estimate['macs'] / 1e6:.2f} M MACs; chosen as {s.why}; weights inherited and recovered by "
            "distillation, the baseline is the same network trained without the teacher.")


SEARCH_COLUMNS = ("candidate", "px", "MACs (M)", "params (M)", "FP16 ms", "INT8 ms", "band (ms)", "measured ms",
                  "meets", "proxy OA %", "")


def search_table(search: dict[str, Any]) -> tuple[str, list[list[str]]]:
    """``(title, rows)`` of a search (``SearchResult.to_dict()``) under ``SEARCH_COLUMNS``: the teacher as the
    reference, then every candidate with its estimates, band, whether it meets the budget, proxy and note."""
    b, pr = search["budget"], search["proxy"]
    p = b["precision"]
    where = b["target"] + (f"@{b['power_mode']}" if b.get("power_mode") else "")
    k = search["teacher"].get(f"{p}_correction")
    est = "ESTIMATES" + (f" × measured/estimated for the teacher on {b['remote']}; measured there" if b.get("remote")
                         else f" × {k:.3f}, this device's calibration of {b.get('architecture')}" if k else "")
    title = (f"students considered for {where}: ≤ {b['latency_ms']:g} ms {p} ({est}, batch 1); proxy = "
             f"{pr['method']} for {pr['epochs']} epochs on {pr['share']:.0%} of the training split, validation OA")

    def row(name: str, size, e: dict, meets: str, proxy, note: str) -> list[str]:
        band = e.get(f"{p}_band")
        return [name, str(size), fmt.num(e["macs"], 1e6, 2), fmt.num(e["params"], 1e6, 3), fmt.ms(e.get("fp16_ms")),
                fmt.ms(e.get("int8_ms")), fmt.band(*band) if band else fmt.MISSING, fmt.ms(e.get("measured_ms")), meets,
                fmt.pct(proxy), note]

    rows = [row("teacher", search["teacher"].get("image_size", ""), search["teacher"], "", None, "reference")]
    rows += [row(c["name"], c["image_size"], c["estimate"], "yes" if c["reached"] else "no", c["proxy_oa"],
                 "← chosen" if c["name"] == search["chosen"] else c["note"]) for c in search["candidates"]]
    return title, rows
