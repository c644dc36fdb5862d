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
from compress.io import read_json, to_jsonable, write_json_atomic
from compress.jobs.recipe import Recipe, StudentRecipe, check_recipe

STATE_DIR = ".pipeline"


@dataclass(frozen=True)
class Step:
    name: str
    kind: str  # teacher | baseline | student | export | profile | report
    settings: dict[str, Any]
    reads: tuple[str, ...] = ()
    folder: str = ""  # relative to the run folder


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

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def _plain(s: StudentRecipe) -> bool:
    return s.prune is None and s.quantize is None


def plan(r: Recipe) -> list[Step]:
    """The recipe's steps in the order they run."""
    base = {"data": to_jsonable(r.data), "train": to_jsonable(r.train)}
    steps = [Step("teacher", "teacher", {**base, "teacher": to_jsonable(r.teacher)}, folder="teacher")]
    archs = sorted({s.student for s in r.students if _plain(s)}) if r.baseline else []
    steps += [Step(f"baseline:{a}", "baseline", {**base, "arch": a}, ("teacher",), f"baselines/{a}") for a in archs]
    for s in r.students:
        reads = ("teacher",) if s.quantize is None else ("teacher", f"student:{s.quantize['from']}")
        steps.append(Step(f"student:{s.name}", "student", {**base, "student": to_jsonable(s)}, reads, f"students/{s.name}"))
    exported = [s.name for s in r.students if s.quantize is None] + (["teacher"] if r.export.teacher else [])
    for n in exported:
        src = "teacher" if n == "teacher" else f"student:{n}"
        steps.append(Step(f"export:{n}", "export", {"export": to_jsonable(r.export)}, (src,), f"exports/{n}"))
    models = [f"export:{n}" for n in exported] + [f"student:{s.name}" for s in r.students if s.quantize]
    steps.append(Step("profile", "profile", {"profile": to_jsonable(r.profile)}, tuple(models), "profile"))
    steps.append(Step("report", "report", {}, ("teacher", *[s.name for s in steps if s.kind in ("baseline", "student")],
                                               "profile"), "."))
    return steps


def _key(step: Step, records: dict[str, dict[str, Any]]) -> str:
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
            f = state / f"{s.name.replace(':', '__')}.json"
            if f.is_file():
                self.records[s.name] = read_json(f)

    def _record_file(self, name: str) -> Path:
        return self.run / STATE_DIR / f"{name.replace(':', '__')}.json"

    def outputs(self, name: str) -> dict[str, Any]:
        return self.records[name]["outputs"]

    def status(self, redo: tuple[str, ...] = ()) -> list[StepStatus]:
        """What a run would do now, without doing it."""
        records = dict(self.records)
        out = []
        for s in self.steps:
            rec = records.get(s.name)
            done = rec is not None and s.name not in redo and rec.get("key") == _key(s, records)
            out.append(StepStatus(s.name, "done" if done else ("redo" if rec else "pending")))
            if not done:
                records[s.name] = {"run_id": "new"}
        return out

    def run_all(self, redo: tuple[str, ...] = (), only_check: bool = False) -> PipelineResult:
        from compress.jobs.pipeline_steps import STEP_KINDS

        unknown = [n for n in redo if n not in {s.name for s in self.steps}]
        if unknown:
            raise UserInputError(f"--redo {', '.join(unknown)}: no such step; the steps are "
                                 f"{', '.join(s.name for s in self.steps)}.")
        check_recipe(self.recipe)
        if only_check:
            return PipelineResult(str(self.run), self.status(redo))
        self.run.mkdir(parents=True, exist_ok=True)
        (self.run / STATE_DIR).mkdir(exist_ok=True)
        if Path(self.recipe_path).resolve() != (self.run / "recipe.yaml").resolve():
            shutil.copyfile(self.recipe_path, self.run / "recipe.yaml")  # what the report says it ran
        done: list[StepStatus] = []
        for s in self.steps:
            key = _key(s, self.records)
            rec = self.records.get(s.name)
            if rec is not None and rec.get("key") == key and s.name not in redo:
                done.append(StepStatus(s.name, "done", outputs=rec["outputs"]))
                continue
            folder = self.run / s.folder
            started = self.run / STATE_DIR / f"{s.name.replace(':', '__')}.started"
            resume = started.is_file() and started.read_text().strip() == key and s.name not in redo
            if not resume and s.folder not in ("", ".") and folder.exists():
                shutil.rmtree(folder)  # our own step folder, from other settings or a --redo
            self._record_file(s.name).unlink(missing_ok=True)
            started.write_text(key)
            t0 = time.perf_counter()
            outputs = STEP_KINDS[s.kind](self, s, folder, resume)
            rec = {"key": key, "run_id": uuid.uuid4().hex, "outputs": to_jsonable(outputs),
                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
            write_json_atomic(self._record_file(s.name), rec)
            started.unlink(missing_ok=True)
            self.records[s.name] = rec
            done.append(StepStatus(s.name, "ran", round(time.perf_counter() - t0, 1), rec["outputs"]))
        return PipelineResult(str(self.run), done, self.records["report"]["outputs"])


def run_pipeline(recipe_path: str | Path, redo: tuple[str, ...] = (), dry_run: bool = False,
                 progress: ProgressSink | None = None, out: str | None = None) -> PipelineResult:
    """Load, check and run (or, with ``dry_run``, list) a recipe's steps."""
    from compress.jobs.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    if out:
        recipe = dataclasses.replace(recipe, out=out)
    return Pipeline(recipe, str(recipe_path), progress).run_all(tuple(redo), only_check=dry_run)


StepFn = Callable[[Pipeline, Step, Path, bool], dict[str, Any]]
