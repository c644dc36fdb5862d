"""The jobs behind ``compress train`` (one model) and ``compress distill`` (teacher → baseline → student)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from compress.checkpoint import Manifest
from compress.data.bundle import DataBundle, build_data
from compress.data.folder import DIGITS
from compress.engine.progress import ProgressSink
from compress.engine.stage import StageResult, StageSpec, StageSummary, run_stage
from compress.errors import UserInputError
from compress.io import to_jsonable, write_json_atomic
from compress.jobs import preflight
from compress.jobs.inputs import JobConfig, JobInputs, resolve_inputs, student_source
from compress.jobs.rundir import open_run

# Defaults chosen per data source: the embedded 16 px digits get CIFAR-style nets that run in
# seconds on a laptop CPU; folder data (aerial scenes) get ImageNet-style nets.
AUTO_ARCH = {DIGITS: {"teacher": "cifar_resnet20", "student": "cifar_resnet8"},
             "folder": {"teacher": "resnet18", "student": "mobilenetv3_small_100"}}


@dataclass
class JobResult:
    """The trained models side by side (``rows``: teacher / baseline / student, or one model), and where files are."""

    run_dir: str
    rows: list[StageSummary]
    data: dict[str, Any]
    method: str
    note: str | None = None  # e.g. "nothing to do" when a finished run was resumed
    chosen: str | None = None  # what the default student is and why
    search: dict[str, Any] | None = None  # the candidates considered for a --target (student_search.SearchResult)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def auto_arch(name: str, role: str, data: DataBundle) -> str:
    if name != "auto":
        return name
    return AUTO_ARCH[DIGITS if data.source_name == DIGITS else "folder"][role]


def data_summary(data: DataBundle) -> dict[str, Any]:
    return {"source": data.source_name, "classes": len(data.class_names), "train": len(data.train),
            "val": len(data.val) if data.val else 0, "test": len(data.test), "image_size": data.image_size,
            "bands": data.in_chans, "bad_files": len(data.bad_files), "split_hash": data.split.hash}


def teacher_for(paths: tuple[str, ...], weights: tuple[float, ...], data: DataBundle) -> nn.Module:
    from compress.models.teacher import load_teacher

    return load_teacher(paths, weights, class_names=data.class_names, in_chans=data.in_chans, mean=data.mean,
                        std=data.std, image_size=data.image_size)


def _load_data(inputs: JobInputs, run: Path, progress, image_size: int | None = None) -> DataBundle:
    """The run's data as resolved (``image_size``: the same split at another input size, a resolution candidate)."""
    cfg, data_cfg = inputs.cfg, inputs.data
    if image_size is not None:
        data_cfg = dataclasses.replace(cfg.data, image_size=image_size)
    return build_data(data_cfg, seed=cfg.train.seed, run_dir=run, reuse_split=cfg.resume or image_size is not None,
                      model_mean_std=inputs.mean_std,
                      progress=(lambda d, t: progress.advance(0, f"scanned {d}/{t}")) if progress else None)


def _spec(cfg: JobConfig, resolved: dict, **kw: Any) -> StageSpec:
    return StageSpec(config=resolved, resume=cfg.resume, workers=cfg.data.workers, **kw)


def _unlabeled_pool(cfg: JobConfig, data: DataBundle):
    from compress.data.sources import unlabeled_folder

    return unlabeled_folder(cfg.unlabeled, data.train) if cfg.unlabeled else None


def given_teacher_row(paths: tuple[str, ...], mans: tuple[Manifest, ...], teacher: nn.Module, data: DataBundle,
                      device: str) -> StageSummary:
    """The table row of a ``--teacher`` checkpoint (or ensemble; ``mans``: their manifests), scored on this run's
    test split."""
    from compress.evaluation.classifier import evaluate_classifier
    from compress.hardware import resolve_device

    m = evaluate_classifier(teacher, data.test, data.class_names, resolve_device(device))
    other_split = any(man.split_hash and man.split_hash != data.split.hash for man in mans)
    return StageSummary(role="teacher (given)" + (", other split" if other_split else ""),
                        architecture="+".join(man.architecture for man in mans), method="+".join(man.method for man in mans),
                        params_m=round(sum(p.numel() for p in teacher.parameters()) / 1e6, 4), test_oa=m.oa,
                        test_kappa=m.kappa, test_macro_f1=m.macro_f1, best_epoch=max(man.epoch for man in mans),
                        epochs=max(man.epoch for man in mans), seconds=0.0, checkpoint=", ".join(map(str, paths)))


def _note(results: list[StageResult], cfg: JobConfig, pruned: bool = False) -> str | None:
    if cfg.resume and results and all(r.fit is None for r in results):
        done = f"{cfg.train.epochs} epochs" if cfg.train.epochs is not None else "epochs"
        return (f"nothing to do: every stage of this run already finished its {done} "
                "(pass a larger --epochs with --resume to extend it).")
    return below_baseline([r.summary for r in results], pruned)


def below_baseline(rows: list[StageSummary], pruned: bool = False) -> str | None:
    """One line when the distilled student ends below the no-teacher baseline of the same run, and what to try
    (``pruned``: the student already is the pruned teacher)."""
    by = {r.role: r for r in rows}
    b, s = by.get("baseline"), by.get("student")
    if b is None or s is None or b.test_oa is None or s.test_oa is None or s.test_oa >= b.test_oa:
        return None
    start = "" if pruned else ("a student pruned from the teacher (leave out --student, or compress prune TEACHER "
                               "--macs 0.5, then --student PRUNED), ")
    # KD is the one method at or above its baseline in every class-disjoint AID cell, pruned and from scratch
    # (bench/RESULTS.md; the closest, −0.1 pt, is 3 test images).
    kd = "" if s.method == "kd" else "--method kd (the default), "
    return (f"the {s.method} student ({s.test_oa:.2%}) ended {100 * (b.test_oa - s.test_oa):.1f} pt below the "
            f"no-teacher baseline ({b.test_oa:.2%}): distillation did not help here. Try {start}{kd}more --epochs, or "
            f"a smaller distillation weight (compress methods {s.method}).")


def _teacher_model(cfg: JobConfig) -> tuple[nn.Module, tuple[int, ...], str]:
    """The given teacher the student is made from: (model, its input shape, its architecture)."""
    from compress.jobs.default_student import teacher_to_prune
    from compress.models.restore import load_checkpoint

    ck = load_checkpoint(teacher_to_prune(cfg.teacher, cfg.teacher_weights))
    man = ck.manifest
    return ck.model, (1, man.in_chans, man.image_size, man.image_size), man.architecture


def _dry_steps(cfg: JobConfig, teacher_spec: StageSpec, base_spec: StageSpec, student_spec: StageSpec,
               data: DataBundle, teacher, needs_teacher: bool, t_arch: str, pool=None) -> None:
    """Every stage built and stepped once on real images before the first one trains."""
    from compress.engine.stage import build_model_for_data

    if needs_teacher and teacher is None:
        preflight.dry_step(teacher_spec, data)
    if cfg.baseline:
        preflight.dry_step(base_spec, data)
    stand_in = teacher if teacher is not None else build_model_for_data(t_arch, data).eval()
    preflight.dry_step(student_spec, data, stand_in if needs_teacher else None, pool)


def run_distill(cfg: JobConfig, progress: ProgressSink | None = None) -> JobResult:
    """Teacher (given or trained) → baseline student (CE) → distilled student (``cfg.method``).

    Without ``--student`` the student is the teacher pruned to ``cfg.budget`` (see ``default_student``),
    pruned right after the teacher is known and before any student trains."""
    from compress.engine.stage import build_model_for_data
    from compress.jobs.default_student import check_reachable, pruned_student, teacher_to_prune
    from compress.jobs.student_search import SEARCH_DIR, check_search_reachable, search_line, search_student
    from compress.methods import METHODS
    from compress.parallel import is_main

    if cfg.student == "auto" and cfg.weights:
        raise UserInputError("--weights sets a zoo student's initial weights, but the default student is the teacher "
                             "pruned (it inherits the teacher's weights): name the student with --student NAME, or "
                             "drop --weights.")
    if cfg.student != "auto" and cfg.budget.target:
        raise UserInputError(f"--target chooses the student for a device, but --student {cfg.student} names one: drop "
                             "one of them (`compress profile STUDENT --target DEV` estimates a student you chose).")
    inputs = resolve_inputs(cfg, "distill")
    cfg = inputs.cfg
    prune_teacher = cfg.student == "auto"
    needs_teacher = METHODS.get(cfg.method).requires_teacher or bool(cfg.teacher) or prune_teacher
    resolved = to_jsonable(cfg)
    with open_run(cfg.out, "distill", cfg.resume, resolved, device=cfg.train.device) as run:
        data = _load_data(inputs, run, progress)
        t_arch = auto_arch(cfg.teacher_arch, "teacher", data)
        t_train = cfg.train if cfg.teacher_epochs is None else dataclasses.replace(cfg.train, epochs=cfg.teacher_epochs)
        teacher_spec = _spec(cfg, resolved, role="teacher", arch=t_arch, method="ce", train=t_train,
                             run_dir=run / "teacher", init={"pretrained": cfg.pretrained,
                                                            "weights": cfg.teacher_init_weights})
        chosen = None

        def student_specs(source: tuple[str, dict, str | None]) -> tuple[StageSpec, StageSpec]:
            s_arch, s_kwargs, s_init = source
            s_arch = t_arch if prune_teacher and s_arch == "auto" else auto_arch(s_arch, "student", data)
            common = dict(arch=s_arch, train=cfg.train, model_kwargs=s_kwargs, init={"weights": s_init})
            return (_spec(cfg, resolved, role="baseline", method="ce", run_dir=run / "baseline", **common),
                    _spec(cfg, resolved, role="student", method=cfg.method, run_dir=run / "student",
                          method_params=cfg.method_params, **common))

        search = None
        sizes = {data.image_size: data}

        def data_at(size: int) -> DataBundle:  # the run's split at another input size (a resolution candidate)
            if size not in sizes:
                sizes[size] = _load_data(inputs, run, progress, image_size=size)
            return sizes[size]

        def prune(teacher_ckpt: str) -> tuple[StageSpec, StageSpec, str]:
            nonlocal data, teacher, search
            if not cfg.budget.target:
                ckpt, why = pruned_student(cfg.budget, teacher_ckpt, run, cfg.resume)
                return (*student_specs(student_source(dataclasses.replace(cfg, student=ckpt))), why)
            paths = cfg.teacher or (teacher_ckpt,)
            found = search_student(teacher_ckpt, device_budget, run, data_at,
                                   lambda d: teacher_for(paths, cfg.teacher_weights, d), cfg.train, resolved,
                                   resume=cfg.resume, progress=progress)
            search = found.to_dict()
            data = data_at(found.image_size)
            teacher = teacher_for(paths, cfg.teacher_weights, data)
            return (*student_specs(student_source(dataclasses.replace(cfg, student=found.checkpoint))),
                    search_line(found))

        shape = (1, data.in_chans, data.image_size, data.image_size)
        twin = build_model_for_data(t_arch, data) if prune_teacher and not cfg.teacher else None
        device_budget = None
        if prune_teacher and cfg.budget.target:  # the budget, and whether any candidate meets it, known now
            t_model, t_shape, arch = (twin, shape, t_arch) if twin is not None else _teacher_model(cfg)
            device_budget = cfg.budget.device_budget(t_model, t_shape, run / SEARCH_DIR / "onnx", arch)
            check_search_reachable(device_budget, t_model, t_shape, arch, candidates=twin is not None)
        teacher = teacher_for(cfg.teacher, cfg.teacher_weights, data) if cfg.teacher else None
        given = [given_teacher_row(cfg.teacher, inputs.teachers, teacher, data, cfg.train.device)] if cfg.teacher else []
        if prune_teacher and cfg.teacher:  # pruned now: a budget it cannot meet stops the run before any training
            if cfg.budget.target:  # the candidates' proxies train: every stage is dry-stepped on a stand-in first
                _dry_steps(cfg, teacher_spec, *student_specs(student_source(
                    dataclasses.replace(cfg, student=teacher_to_prune(cfg.teacher, cfg.teacher_weights)))),
                    data, teacher, needs_teacher, t_arch)
            base_spec, student_spec, chosen = prune(teacher_to_prune(cfg.teacher, cfg.teacher_weights))
        else:  # a trained-here teacher is pruned once trained; its untrained twin stands in until then
            base_spec, student_spec = student_specs(inputs.student)
            if prune_teacher and not cfg.budget.target:
                check_reachable(cfg.budget, twin, shape, t_arch)
        pool = _unlabeled_pool(cfg, data)
        _dry_steps(cfg, teacher_spec, base_spec, student_spec, data, teacher, needs_teacher, t_arch, pool)
        results: list[StageResult] = []
        if needs_teacher and teacher is None:
            results.append(run_stage(teacher_spec, data, progress=progress))
            teacher = teacher_for((results[-1].checkpoint,), (), data)
            if prune_teacher:
                base_spec, student_spec, chosen = prune(str(results[-1].checkpoint))
        if cfg.baseline:
            results.append(run_stage(base_spec, data, progress=progress))
        results.append(run_stage(student_spec, data, teacher=teacher, unlabeled=pool, progress=progress))
        result = JobResult(run_dir=str(run), rows=given + [r.summary for r in results], method=cfg.method,
                           data=data_summary(data), note=_note(results, cfg, chosen is not None), chosen=chosen,
                           search=search)
        if is_main():
            write_json_atomic(run / "metrics.json", {k: v for k, v in result.to_dict().items() if k != "note"})
    return result


def run_train(cfg: JobConfig, progress: ProgressSink | None = None) -> JobResult:
    """Train one model with a no-teacher method (``ce`` by default): teachers, ensemble members, baselines."""
    from compress.methods import METHODS

    if METHODS.get(cfg.method).requires_teacher and not cfg.teacher:
        raise UserInputError(f"Method '{cfg.method}' needs a teacher: use `compress distill`, or pass --teacher CKPT.")
    inputs = resolve_inputs(cfg, "train")
    resolved = to_jsonable(cfg)
    with open_run(cfg.out, "train", cfg.resume, resolved, device=cfg.train.device) as run:
        data = _load_data(inputs, run, progress)
        teacher = teacher_for(cfg.teacher, cfg.teacher_weights, data) if cfg.teacher else None
        s_name, s_kwargs, s_init = inputs.student
        spec = _spec(cfg, resolved, role="model", arch=auto_arch(s_name, "teacher", data), method=cfg.method,
                     train=cfg.train, run_dir=run, method_params=cfg.method_params, model_kwargs=s_kwargs,
                     init={"pretrained": cfg.pretrained, "weights": s_init})
        pool = _unlabeled_pool(cfg, data)
        preflight.dry_step(spec, data, teacher, pool)
        res = run_stage(spec, data, teacher=teacher, unlabeled=pool, progress=progress)
    d = data_summary(data)
    d.pop("val")
    return JobResult(run_dir=str(run), rows=[res.summary], method=cfg.method, data=d, note=_note([res], cfg))
