"""What each ``compress pipeline`` step does; every one calls the job behind a single command.

Each function gets the pipeline, its step, its folder and whether to resume a half-finished run of
the same settings, and returns the outputs later steps read: its kind's dataclass from
:mod:`compress.jobs.pipeline_outputs`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from compress.data.bundle import DataConfig
from compress.jobs.candidates import target_spec
from compress.jobs.default_student import StudentBudget
from compress.jobs.pipeline_outputs import (BaselineOutputs, DeviceEstimate, ExportOutputs, PipelineView,
                                            ProfileOutputs, ProfileRow, ReportOutputs, ScoredFile, Step,
                                            StudentOutputs, TeacherOutputs)
from compress.jobs.recipe import StudentRecipe, search_budget


def _data(p: PipelineView) -> DataConfig:
    """The recipe's data, on the teacher's split (every stage trains and tests on the same images)."""
    split = p.outputs("teacher").split
    return dataclasses.replace(p.recipe.data, split=split) if split and Path(split).is_file() else p.recipe.data


def _teacher(p: PipelineView, s: Step, folder: Path, resume: bool) -> TeacherOutputs:
    from compress.data.split import find_split_file
    from compress.jobs.train_distill import JobConfig, run_train

    t = p.recipe.teacher
    if t.checkpoint:
        split = find_split_file(t.checkpoint[0])
        return TeacherOutputs(tuple(t.checkpoint), tuple(t.weights), str(split) if split else None)
    train = dataclasses.replace(p.recipe.train, epochs=t.epochs or p.recipe.train.epochs)
    res = run_train(JobConfig(data=p.recipe.data, train=train, student=t.arch, method="ce", pretrained=t.pretrained,
                              weights=t.init_weights, out=str(folder), resume=resume), p.progress)
    row = dataclasses.asdict(res.rows[0])
    return TeacherOutputs((row["checkpoint"],), (), str(folder / "split.json"), {**row, "role": "teacher"})


def _baseline(p: PipelineView, s: Step, folder: Path, resume: bool) -> BaselineOutputs:
    from compress.jobs.train_distill import JobConfig, run_train

    res = run_train(JobConfig(data=_data(p), train=p.recipe.train, student=s.settings["arch"], method="ce",
                              out=str(folder), resume=resume), p.progress)
    row = dataclasses.asdict(res.rows[0])
    return BaselineOutputs(row["checkpoint"], {**row, "role": "baseline"})


def _student(p: PipelineView, s: Step, folder: Path, resume: bool) -> StudentOutputs:
    st: StudentRecipe = next(x for x in p.recipe.students if f"student:{x.name}" == s.name)
    teacher = p.outputs("teacher")
    if st.quantize is not None:
        return _quantized(p, st, folder, resume)
    if st.prune is not None:
        from compress.jobs.prune import PruneJobConfig, run_prune

        if len(teacher.checkpoints) != 1:
            from compress.errors import UserInputError

            raise UserInputError(f"students.{st.name}.prune prunes one teacher; the recipe gives an ensemble.")
        res = run_prune(PruneJobConfig(checkpoint=teacher.checkpoints[0], out=str(folder), recover=True,
                                       method=st.method, method_params=dict(st.params), train=p.recipe.train,
                                       baseline=p.recipe.baseline, resume=resume, **st.prune), p.progress).to_dict()
        rows = res["recovered"]["rows"]
        row = next(r for r in rows if r["role"] == "student")
        return StudentOutputs(row["checkpoint"], {**row, "role": f"pruned ({res['budget']})"},
                              baseline_row=next((r for r in rows if r["role"] == "baseline"), None),
                              oa_before_recovery=res["test_oa_before_recovery"])
    from compress.jobs.train_distill import JobConfig, run_distill

    # the first default student (the teacher pruned to half its MACs) trains the pruned network's baseline too
    first_auto = next((x.name for x in p.recipe.students if x.student == "auto" and x.prune is None
                       and x.quantize is None and x.search is None), None)
    # a student searched for a device is a network of its own: it trains its own baseline
    baseline = p.recipe.baseline and (st.name == first_auto or st.search is not None)
    budget = search_budget(st) if st.search is not None else StudentBudget()
    res = run_distill(JobConfig(data=_data(p), train=p.recipe.train, student=st.student, weights=st.weights,
                                method=st.method, method_params=dict(st.params), teacher=teacher.checkpoints,
                                teacher_weights=teacher.weights, baseline=baseline, budget=budget,
                                out=str(folder), resume=resume), p.progress)
    rows = [dataclasses.asdict(r) for r in res.rows]
    student = next(r for r in rows if r["role"] == "student")
    given = next((r for r in rows if r["role"].startswith("teacher")), None)
    base = next((r for r in rows if r["role"] == "baseline"), None)
    role = (f"student (for {st.search['target']}: {res.search['chosen']})" if res.search else
            "student (the teacher pruned)" if res.chosen else "student")
    return StudentOutputs(student["checkpoint"], {**student, "role": role}, given, base, res.chosen, res.search)


def _quantized(p: PipelineView, st: StudentRecipe, folder: Path, resume: bool) -> StudentOutputs:
    from compress.jobs.qad import QAD_TRAIN, QuantizeConfig, run_quantize

    q = st.quantize or {}
    src = p.outputs(f"student:{q['from']}")
    train = dataclasses.replace(QAD_TRAIN, epochs=int(q.get("epochs", QAD_TRAIN.epochs)),
                                lr=float(q.get("lr", QAD_TRAIN.lr)), device=p.recipe.train.device)
    flavour = q.get("flavour") or ("trt" if p.recipe.export.int8_flavour == "trt" else "cpu")
    res = run_quantize(QuantizeConfig(checkpoint=src.checkpoint, out=str(folder), qat=True, flavour=flavour,
                                      train=train, resume=resume), p.progress)
    qad = [str(f) for role, f in res.files.items() if role == "qad" and str(f).endswith(".onnx")]
    return StudentOutputs(res.student_checkpoint, {**src.row, "role": "student (QAD)", "method": f"qad<-{q['from']}"},
                          files=_scored(qad), accuracy=res.accuracy)


def _scored(files: list[str], failed: dict[str, str] | None = None) -> tuple[ScoredFile, ...]:
    """OA / kappa / macro-F1 of each exported classifier on the run's test split, its precision and flavour,
    and (``failed``: file name → parity row) the parity row it failed."""
    from export.evaluate import evaluate_onnx
    from export.onnx import read_metadata

    out = []
    for f in files:
        meta = read_metadata(f)
        precision = meta.get("precision", "fp32")
        flavour = meta.get("int8_flavour")
        m = evaluate_onnx(f).metrics
        fixes = {k: meta[k] for k in ("cle", "adaround", "bias_correction", "float_nodes") if meta.get(k)}
        out.append(ScoredFile(str(f), precision, m.get("oa"), m.get("kappa"), m.get("macro_f1"), flavour,
                              fixes if precision == "int8" else None, (failed or {}).get(Path(f).name)))
    return tuple(out)


def _export(p: PipelineView, s: Step, folder: Path, resume: bool) -> ExportOutputs:
    from export.chain import export_checkpoint

    from compress.jobs.recipe import export_config

    src = p.outputs(s.reads[0])
    ckpt = src.checkpoints[0] if isinstance(src, TeacherOutputs) else src.checkpoint
    res = export_checkpoint(ckpt, folder, export_config(p.recipe.export))
    onnx_files = [str(folder / f) for f in res.files if f.endswith(".onnx")]
    failed = {r.file: r.name for r in res.parity.rows if not r.passed and r.file}
    return ExportOutputs(ckpt, _scored(onnx_files, failed), res.outcome, res.message or "", res.engine_status,
                         tuple(res.notes), str(folder))


def _profile(p: PipelineView, s: Step, folder: Path, resume: bool) -> ProfileOutputs:
    from profiles.api import ProfileConfig, profile_models

    from compress.io import write_json_atomic
    from compress.jobs.pipeline_outputs import outputs_json

    pr = p.recipe.profile
    files = [f.file for name in s.reads for f in p.outputs(name).files]
    rows: dict[str, ProfileRow] = {f: ProfileRow() for f in files}
    if pr.host:
        for f in files:
            rep = profile_models([f], ProfileConfig(device="cpu", warmup=pr.warmup, iters=pr.iters, threads=pr.threads))
            t = rep.models[0]
            a = t.analysis or {}
            lat = t.latency[0] if t.latency else {}
            rows[f] = ProfileRow(a.get("params"), a.get("macs"), t.file_bytes, a.get("peak_activation_bytes"),
                                 lat.get("mean_ms"), lat.get("p90_ms"), (rep.device or {}).get("name"))
    for spec in pr.targets:
        name, mode = target_spec(spec)
        rep = profile_models(files, ProfileConfig(target=name, power_mode=mode))
        for f, t in zip(files, rep.models):
            e = next((x for x in t.latency if x.get("kind") == "estimate"), None)
            r = _with_counts(rows[f], t)
            rows[f] = dataclasses.replace(r, estimates={**r.estimates, spec: DeviceEstimate(
                e["latency_ms"], e["low_ms"], e["high_ms"], e["power_mode"])}) if e else r
    out = ProfileOutputs(rows)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "profile.json", outputs_json(out)["files"])
    return out


def _with_counts(r: ProfileRow, t) -> ProfileRow:
    """``r`` with the file's parameters, MACs, size and peak activations from a profile ``t`` of it, unless a
    profile before (the host's) gave them already."""
    if r.params is not None:
        return r
    a = t.analysis or {}
    return dataclasses.replace(r, params=a.get("params"), macs=a.get("macs"), file_bytes=t.file_bytes,
                               peak_act_bytes=a.get("peak_activation_bytes"))


def _report(p: PipelineView, s: Step, folder: Path, resume: bool) -> ReportOutputs:
    from compress.jobs.pipeline_report import write_pipeline_report

    return ReportOutputs({k: str(v) for k, v in write_pipeline_report(p).items()})


STEP_KINDS = {"teacher": _teacher, "baseline": _baseline, "student": _student, "export": _export,
              "profile": _profile, "report": _report}
