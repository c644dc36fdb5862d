"""``compress pipeline RECIPE.yaml``: the recipe's steps, run in order and resumably.

Steps: ``teacher`` → ``baseline:ARCH`` → ``student:NAME`` → ``export:NAME`` → ``profile`` → ``report``.
Each step writes into its own folder of the run and, when it finishes, ``.pipeline/STEP.json`` with its
outputs and a key: the hash of its settings and of the keys of the steps it reads. A step whose
record holds the current key is skipped; ``--redo STEP`` forgets one record, and the steps that read
it follow because their key changes. A step killed half-way is resumed (training) or redone.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from compress.engine.progress import ProgressSink
from compress.errors import UserInputError
from compress.io import read_json, to_jsonable, write_json_atomic, write_text_atomic
from compress.jobs.pipeline_outputs import OUTPUT_TYPES, Step, StepOutputs, outputs_json, read_outputs
from compress.jobs.recipe import Recipe, StudentRecipe, check_recipe
from compress.lock import lock_folder, release_folder

STATE_DIR = ".pipeline"


@dataclass
class StepStatus:
    name: str
    status: str  # done (skipped) | ran | pending (dry run) | redo (dry run)
    seconds: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineResult:
    run_dir: str
    steps: list[StepStatus]
    report: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)  # checks a finished run did not pass (exported files' parity)
    rows: list[dict[str, Any]] = field(default_factory=list)  # the report's rows: one per model × precision
    targets: list[str] = field(default_factory=list)  # the device profiles the rows' estimates are for
    recommendations: list[dict[str, Any]] = field(default_factory=list)  # what to ship per device (recommend.py)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def _plain(s: StudentRecipe) -> bool:
    return s.prune is None and s.quantize is None and s.search is None


def _settings(s: StudentRecipe) -> dict[str, Any]:
    """A student's settings; ``search`` (added later) only when set, so older runs keep their keys."""
    return {k: v for k, v in to_jsonable(s).items() if not (k == "search" and v is None)}


def _export_settings(r: Recipe) -> dict[str, Any]:
    """The export section as its step key hashes it: ``int8_flavour`` under its first name, ``int8_target``, and
    ``int8_cle`` only when not at its default, so that runs made before the rename and before CLE keep their
    export records."""
    return {("int8_target" if k == "int8_flavour" else k): v for k, v in to_jsonable(r.export).items()
            if not (k == "int8_cle" and v == "auto")}


def _checkpoint(student: str) -> bool:
    return "/" in student or Path(student).exists()


def plan(r: Recipe) -> list[Step]:
    """The recipe's steps in the order they run."""
    base = {"data": to_jsonable(r.data), "train": to_jsonable(r.train)}
    steps = [Step("teacher", "teacher", {**base, "teacher": to_jsonable(r.teacher)}, folder="teacher")]
    # a baseline is a zoo network trained without a teacher; a student given as a checkpoint has none; the
    # default student (the teacher pruned) trains its own baseline, the same pruned network, in its step
    archs = sorted({s.student for s in r.students if _plain(s) and not _checkpoint(s.student)
                    and s.student != "auto"}) if r.baseline else []
    steps += [Step(f"baseline:{a}", "baseline", {**base, "arch": a}, ("teacher",), f"baselines/{a}") for a in archs]
    for s in r.students:
        reads = ("teacher",) if s.quantize is None else ("teacher", f"student:{s.quantize['from']}")
        own = {"baseline": r.baseline} if s.quantize is None and (s.prune is not None or s.student == "auto") else {}
        steps.append(Step(f"student:{s.name}", "student", {**base, "student": _settings(s), **own}, reads,
                          f"students/{s.name}"))
    exported = [s.name for s in r.students if s.quantize is None] + (["teacher"] if r.export.teacher else [])
    for n in exported:
        src = "teacher" if n == "teacher" else f"student:{n}"
        steps.append(Step(f"export:{n}", "export", {"export": _export_settings(r)}, (src,), f"exports/{n}"))
    models = [f"export:{n}" for n in exported] + [f"student:{s.name}" for s in r.students if s.quantize]
    profile = {k: v for k, v in to_jsonable(r.profile).items() if k != "budget"}  # the budget only changes the report
    steps.append(Step("profile", "profile", {"profile": profile}, tuple(models), "profile"))
    report = {"budget": r.profile.budget} if r.profile.budget else {}  # older runs (no budget) keep their key
    steps.append(Step("report", "report", report, ("teacher", *[s.name for s in steps if s.kind in ("baseline", "student")],
                                                   "profile"), "."))
    return steps


def step_key(step: Step, records: dict[str, dict[str, Any]]) -> str:
    """16 hex digits of the hash of ``step``'s settings and of the run ids of the records it reads:
    a step whose record holds this key is done; any change to either makes it run again."""
    payload = json.dumps({"settings": step.settings, "reads": [records.get(d, {}).get("run_id") for d in step.reads]},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class Pipeline:
    """Runs one recipe in ``run_dir``; the step functions live in :mod:`compress.jobs.pipeline_steps`."""

    def __init__(self, recipe: Recipe, recipe_path: str, progress: ProgressSink | None = None) -> None:
        self.recipe, self.recipe_path, self.progress = recipe, recipe_path, progress
        self.run = Path(recipe.out)
        self.steps = plan(recipe)
        self.records: dict[str, dict[str, Any]] = {}
        state = self.run / STATE_DIR
        for s in self.steps:
            f = state / f"{_file_name(s.name)}.json"
            if f.is_file():
                self.records[s.name] = read_json(f)

    def _record_file(self, name: str) -> Path:
        return self.run / STATE_DIR / f"{_file_name(name)}.json"

    def outputs(self, name: str) -> StepOutputs:
        """What step ``name`` handed on, as its kind's dataclass (read from its record)."""
        kind = next(s.kind for s in self.steps if s.name == name)
        return read_outputs(kind, self.records[name]["outputs"])

    def status(self, redo: tuple[str, ...] = ()) -> list[StepStatus]:
        """What a run would do now, without doing it."""
        records = dict(self.records)
        out = []
        for s in self.steps:
            rec = records.get(s.name)
            done = rec is not None and s.name not in redo and rec.get("key") == step_key(s, records)
            out.append(StepStatus(s.name, "done" if done else ("redo" if rec else "pending")))
            if not done:
                records[s.name] = {"run_id": "new"}
        return out

    def run_all(self, redo: tuple[str, ...] = (), only_check: bool = False) -> PipelineResult:
        unknown = [n for n in redo if n not in {s.name for s in self.steps}]
        if unknown:
            raise UserInputError(f"--redo {', '.join(unknown)}: no such step; the steps are "
                                 f"{', '.join(s.name for s in self.steps)}.")
        check_run_folder(self.run)
        check_recipe(self.recipe)
        if only_check:
            return PipelineResult(str(self.run), self.status(redo))
        (self.run / STATE_DIR).mkdir(parents=True, exist_ok=True)
        lock_folder(self.run / STATE_DIR, "pipeline folder")
        try:
            return self._run_steps(redo)
        finally:
            release_folder(self.run / STATE_DIR)

    def _run_steps(self, redo: tuple[str, ...]) -> PipelineResult:
        from compress.jobs.pipeline_steps import STEP_KINDS

        if Path(self.recipe_path).resolve() != (self.run / "recipe.yaml").resolve():
            shutil.copyfile(self.recipe_path, self.run / "recipe.yaml")  # what the report says it ran
        done: list[StepStatus] = []
        for s in self.steps:
            key = step_key(s, self.records)
            rec = self.records.get(s.name)
            if rec is not None and rec.get("key") == key and s.name not in redo:
                done.append(StepStatus(s.name, "done", outputs=rec["outputs"]))
                continue
            folder = self.run / s.folder
            started = self.run / STATE_DIR / f"{_file_name(s.name)}.started"
            # a step stopped before its run folder held a config resumes nothing: it starts again
            resume = started.is_file() and started.read_text().strip() == key and s.name not in redo and \
                (folder / "config.json").is_file()
            aside = None
            if not resume and s.folder not in ("", ".") and folder.exists():
                # our own step folder, from other settings or a --redo: kept until its replacement is complete
                aside = self.run / STATE_DIR / f"{_file_name(s.name)}.old-{uuid.uuid4().hex[:8]}"
                folder.rename(aside)
            old_record = self._record_file(s.name)
            old = old_record.read_text() if old_record.is_file() else None
            old_record.unlink(missing_ok=True)
            started.write_text(key)
            t0 = time.perf_counter()
            try:
                outputs = STEP_KINDS[s.kind](self, s, folder, resume)
                if not isinstance(outputs, OUTPUT_TYPES[s.kind]):
                    raise TypeError(f"step {s.name} returned {type(outputs).__name__}, not "
                                    f"{OUTPUT_TYPES[s.kind].__name__}")
            except BaseException:
                if aside is not None:  # the finished results come back; the failed attempt goes
                    shutil.rmtree(folder, ignore_errors=True)
                    aside.rename(folder)
                    started.unlink(missing_ok=True)
                    if old is not None:
                        write_text_atomic(old_record, old)
                raise
            rec = {"key": key, "run_id": uuid.uuid4().hex, "outputs": outputs_json(outputs),
                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
            write_json_atomic(self._record_file(s.name), rec)
            started.unlink(missing_ok=True)
            if aside is not None:
                shutil.rmtree(aside, ignore_errors=True)
            self.records[s.name] = rec
            done.append(StepStatus(s.name, "ran", round(time.perf_counter() - t0, 1), rec["outputs"]))
        failed = [f"{s.name}: {s.outputs.get('message') or 'parity failed'}" for s in done
                  if s.name.startswith("export:") and s.outputs.get("outcome") == "parity-failed"]
        from compress.jobs.pipeline_rows import collect_rows, recommendations

        rows, targets = collect_rows(self)
        picks = [x.to_dict() for x in recommendations(self, rows, targets)]
        return PipelineResult(str(self.run), done, self.records["report"]["outputs"], failed, rows, targets, picks)


def _file_name(step: str) -> str:
    """A step name as a file name (``student:kd`` → ``student__kd``)."""
    return step.replace(":", "__").replace("/", "_")


def check_run_folder(run: Path) -> None:
    """The pipeline writes only into an empty folder or a pipeline run of its own (``.pipeline/`` in it)."""
    if run.exists() and not run.is_dir():
        raise UserInputError(f"'{run}' is a file; give the pipeline a folder (--out or the recipe's out:).")
    if run.is_dir() and not (run / STATE_DIR).is_dir() and any(run.iterdir()):
        raise UserInputError(f"'{run}' holds files and is not a pipeline run (it has no {STATE_DIR}/); nothing was "
                             "changed: choose an empty or new folder with --out (or the recipe's out:).")


def run_pipeline(recipe_path: str | Path, redo: tuple[str, ...] = (), dry_run: bool = False,
                 progress: ProgressSink | None = None, out: str | None = None) -> PipelineResult:
    """Load, check and run (or, with ``dry_run``, list) a recipe's steps."""
    from compress.jobs.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    if out:
        recipe = dataclasses.replace(recipe, out=out)
    return Pipeline(recipe, str(recipe_path), progress).run_all(tuple(redo), only_check=dry_run)


StepFn = Callable[[Pipeline, Step, Path, bool], StepOutputs]
