"""The recipe of ``compress pipeline``: data → teacher → students → exports → profiles → report, in YAML.

Every section maps onto the job configs the single commands use (``data:`` is a ``DataConfig``,
``train:`` a ``TrainConfig``); ``compress pipeline --init R.yaml`` writes a commented example that
runs on the embedded digits in a few minutes. ``check_recipe`` validates names, files, budgets and
device profiles before any step runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress.data.bundle import DataConfig
from compress.engine.train_config import TrainConfig
from compress.errors import UserInputError


@dataclass(frozen=True)
class TeacherRecipe:
    checkpoint: tuple[str, ...] = ()  # given teacher checkpoint(s); several → weighted ensemble
    weights: tuple[float, ...] = ()  # ensemble weights, one per checkpoint
    arch: str = "auto"  # trained first when no checkpoint is given
    epochs: int | None = None  # default: train.epochs
    init_weights: str | None = None  # initial weights of the trained teacher (file or package:NAME)
    pretrained: bool = False


@dataclass(frozen=True)
class StudentRecipe:
    name: str = ""
    method: str = "kd"  # a distillation method (compress methods)
    student: str = "auto"  # zoo name or a checkpoint
    weights: str | None = None  # initial student weights
    params: dict[str, Any] = field(default_factory=dict)  # method hyper-parameters
    prune: dict[str, Any] | None = None  # {macs: 0.5} or {params: 0.5}: prune the teacher, recover with `method`
    quantize: dict[str, Any] | None = None  # {from: NAME, epochs: 3}: quantisation-aware distillation of NAME
    # {target: NAME@MODE, latency_ms: MS, precision: fp16}: the student chosen for a device (compress distill --target)
    search: dict[str, Any] | None = None


@dataclass(frozen=True)
class ExportRecipe:
    fp16: bool = True
    int8: bool = True
    int8_flavour: str = "both"  # cpu | trt | both (trt and both give TensorRT's INT8 file)
    int8_budget: float | None = 1.0  # % of top-1 an INT8 file may change / OA points it may lose (fallback)
    calib_images: int = 256
    trt: bool = True  # write the trtexec script (and build the engine where TensorRT is installed)
    teacher: bool = True  # export (and profile) the teacher too: the reference every row is compared with
    int8_cle: bool | str = "auto"  # cross-layer equalisation: tried by the INT8 budget, kept when judged better
    int8_adaround: bool | str = "auto"  # auto: tried by the INT8 budget, kept when judged better | on | off
    int8_bias_correction: bool | str = "auto"  # the same, after AdaRound


@dataclass(frozen=True)
class ProfileRecipe:
    host: bool = True  # measure every file here (ONNX Runtime, CPU)
    targets: tuple[str, ...] = ("jetson-orin-nano-8gb",)  # device profiles to estimate for: NAME or NAME@MODE
    warmup: int = 5
    iters: int = 30
    threads: int | None = None
    budget: dict[str, Any] | None = None  # {latency_ms, memory_mb} or {DEVICE|host: {...}}: the report's pick


@dataclass(frozen=True)
class Recipe:
    out: str = "runs/pipeline"
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    teacher: TeacherRecipe = field(default_factory=TeacherRecipe)
    baseline: bool = True  # the no-teacher baseline of each student architecture
    students: tuple[StudentRecipe, ...] = (StudentRecipe(name="kd"),)
    export: ExportRecipe = field(default_factory=ExportRecipe)
    profile: ProfileRecipe = field(default_factory=ProfileRecipe)


def load_recipe(path: str | Path) -> Recipe:
    from compress.config import build_config, load_config_file

    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"Recipe '{path}' does not exist; `compress pipeline --init {path}` writes an example.")
    from export.settings import renamed_keys

    values = load_config_file(path)
    if isinstance(values.get("export"), dict):
        values["export"] = renamed_keys(values["export"], f"{path}: export")
    return build_config(Recipe, values, section=str(path))


def search_budget(s: StudentRecipe):
    """The ``StudentBudget`` of a student's ``search:`` section (unknown keys, devices and modes are one line)."""
    from compress.jobs.default_student import StudentBudget

    unknown = set(s.search or {}) - {"target", "latency_ms", "precision", "remote"}
    if unknown or not (s.search or {}).get("target") or s.student != "auto":
        raise UserInputError(f"students.{s.name}.search: give the device as {{target: NAME@MODE}} (optional: "
                             "latency_ms, precision, remote), with no student name (the search makes it from the teacher)"
                             + (f"; unknown key(s) {', '.join(sorted(unknown))}" if unknown else "") + ".")
    try:
        return StudentBudget(**s.search)
    except UserInputError as exc:
        raise UserInputError(f"students.{s.name}.search: {exc}") from None


def export_config(e: ExportRecipe):
    """The ``ExportConfig`` an ``export:`` section means (``int8_flavour`` shapes an INT8 file only)."""
    from export.chain import ExportConfig
    from export.int8_fixes import fix_choice
    from export.verify import ParityCriteria

    return ExportConfig(fp16=e.fp16, int8=e.int8, int8_flavour=e.int8_flavour if e.int8 else "auto",
                        int8_budget=e.int8_budget, calib_images=e.calib_images, trt=e.trt, force=True,
                        int8_cle=fix_choice(e.int8_cle, "export.int8_cle"),
                        int8_adaround=fix_choice(e.int8_adaround, "export.int8_adaround"),
                        int8_bias_correction=fix_choice(e.int8_bias_correction, "export.int8_bias_correction"),
                        criteria=ParityCriteria().for_int8_budget(e.int8_budget))


RESERVED_NAMES = ("teacher",)  # step names of the recipe's own (export:teacher)


def check_recipe(r: Recipe) -> None:
    """Everything knowable before the first step: names, references, files, budgets, device profiles,
    every student's method parameters and the export settings."""
    from compress.jobs import preflight
    from compress.methods import METHODS, build_method_params
    from export.chain import validate_export_config
    from profiles.device import load_device_profile

    names = [s.name for s in r.students]
    if not r.students:
        raise UserInputError("the recipe has no students; list at least one under `students:`.")
    bad = [n for n in names if not n or not n.replace("-", "").replace("_", "").isalnum()]
    if bad:
        raise UserInputError(f"student name(s) {bad} are not valid: use letters, digits, '-' and '_'.")
    reserved = [n for n in names if n in RESERVED_NAMES]
    if reserved:
        raise UserInputError(f"student name '{reserved[0]}' is the recipe's own (its teacher's steps); rename the "
                             "student.")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserInputError(f"student name(s) {', '.join(dupes)} appear twice; names must be unique.")
    for i, s in enumerate(r.students):
        if s.method not in METHODS.names():
            raise UserInputError(f"students.{s.name}: unknown method '{s.method}'. Known: {', '.join(METHODS.names())}.")
        if s.quantize is None:
            try:
                build_method_params(s.method, s.params)
            except UserInputError as exc:
                raise UserInputError(f"students.{s.name}.params: {exc}") from None
        if sum(x is not None for x in (s.prune, s.quantize, s.search)) > 1:
            raise UserInputError(f"students.{s.name}: a student is pruned, quantised or searched for a device — one "
                                 "of prune, quantize and search.")
        if s.search is not None:
            search_budget(s)
        if s.prune is not None:
            unknown = set(s.prune) - {"macs", "params"}
            shares = [v for k, v in s.prune.items() if k in ("macs", "params")]
            if unknown or len(shares) != 1 or not all(isinstance(v, (int, float)) and 0 < v < 1 for v in shares):
                raise UserInputError(f"students.{s.name}.prune: give one share in (0, 1), e.g. {{macs: 0.5}}.")
        if s.quantize is not None:
            src = s.quantize.get("from")
            earlier = names[:i]
            if src not in earlier:
                raise UserInputError(f"students.{s.name}.quantize.from: '{src}' is not a student listed before it "
                                     f"({', '.join(earlier) or 'none'}).")
            unknown = set(s.quantize) - {"from", "epochs", "lr", "flavour"}
            if unknown:
                raise UserInputError(f"students.{s.name}.quantize: unknown key(s) {', '.join(sorted(unknown))}.")
        else:
            preflight.check_models([s.student] if not Path(s.student).exists() else [])
            preflight.check_weights(s.weights, f"students.{s.name}.weights")
    preflight.check_checkpoints(r.teacher.checkpoint, "teacher.checkpoint")
    if r.teacher.weights and len(r.teacher.weights) != len(r.teacher.checkpoint):
        raise UserInputError("teacher.weights: give one weight per teacher checkpoint, in the same order.")
    if not r.teacher.checkpoint:
        preflight.check_models([r.teacher.arch])
        preflight.check_weights(r.teacher.init_weights, "teacher.init_weights")
    if r.export.int8_flavour not in ("cpu", "trt", "both"):
        raise UserInputError(f"export.int8_flavour must be cpu, trt or both, got '{r.export.int8_flavour}'.")
    if r.export.int8 and r.export.trt and r.export.int8_flavour == "cpu":
        raise UserInputError("export: the TensorRT INT8 engine needs the trt-flavour file; set int8_flavour: both "
                             "(or trt), or trt: false.")
    validate_export_config(export_config(r.export))
    for spec in r.profile.targets:
        from compress.jobs.candidates import target_spec

        name, mode = target_spec(spec)
        load_device_profile(name).mode(mode)
    from compress.jobs.recommend import check_budget

    check_budget(r.profile.budget, list(r.profile.targets))


INIT_TEMPLATE = """\
# compress pipeline recipe: data -> teacher -> students -> exports -> profiles -> report.
# Run:   compress pipeline {path}          (a finished step is skipped when you run it again)
#        compress pipeline {path} --dry-run   (the steps and whether each is done)
#        compress pipeline {path} --redo NAME (redo one step; the steps after it follow)
# This example runs on the embedded 8x8 digits in about two minutes on two CPU cores. With 10 % of the
# images for training (16 per class) the small student learns visibly more from the teacher than alone;
# at 70 % every model scores 99-100 % and shows nothing.
out: {out}

data:                      # any `compress train` data option (data: a class-per-folder root)
  data: null               # null = the embedded digits; e.g. ../shared/data/AID_150px
  image_size: 16
  train_ratio: 0.1

train:                     # every training stage (teacher, baselines, students)
  epochs: null             # null = 10, or enough for 300 optimizer steps on a small set
  batch_size: 128
  device: auto

teacher:
  checkpoint: []           # given teacher checkpoint(s); empty = train `arch` first
  arch: cifar_resnet20

baseline: true             # the no-teacher baseline of each student architecture

students:                  # one row of the report each (compress methods lists the methods)
  - name: kd               # the teacher pruned to a quarter of its MACs (without prune: half), its weights
    method: kd             # inherited, recovered by KD; its baseline is the same pruned network alone
    prune: {{macs: 0.25}}
# - name: dist             # a zoo network by name (its baseline: the same network without a teacher)
#   method: dist           # (left out of the quick start: trained from scratch on 159 images it learns
#   student: cifar_resnet8 #  no more with a teacher than without)
# - name: orin             # the student for a device: width, depth, lower resolution or depth with one of them,
#   method: kd             # whichever meets the latency (default: half the teacher's, ESTIMATED) and scores
#   search: {{target: jetson-orin-nano-8gb@15W, precision: fp16}}   # best after a short KD; its own baseline
  - name: kd-qad           # quantisation-aware distillation of `kd` (INT8, CPU flavour)
    quantize: {{from: kd, epochs: 3}}

export:
  fp16: true
  int8: true
  int8_flavour: both       # cpu (ONNX Runtime) | trt (TensorRT Q/DQ) | both
  trt: true                # trtexec build script beside each export
  teacher: true            # the teacher exported and profiled too: the reference of every row

profile:
  host: true               # measured here with ONNX Runtime
  targets: [jetson-orin-nano-8gb@15W, jetson-agx-orin-64gb@MAXN]   # estimated (compress profile --list-devices)
# budget: {{latency_ms: 0.5, memory_mb: 20}}   # the report recommends the most accurate file within it, per device
  iters: 20
"""


def write_init(path: str | Path, out: str | None = None) -> Path:
    """Write the commented example recipe (refuses to overwrite)."""
    from compress.io import write_text_atomic

    path = Path(path)
    if path.exists():
        raise UserInputError(f"'{path}' already exists; choose another file name for the new recipe.")
    return write_text_atomic(path, INIT_TEMPLATE.format(path=path, out=out or f"runs/{path.stem}"))


QUICKSTART = Path("runs") / "quickstart.yaml"


def quickstart_recipe(path: str | Path = QUICKSTART) -> tuple[Path, bool]:
    """The recipe ``compress pipeline`` runs when given none: the example, written to ``path`` the first
    time (its run folder beside it) and used as it is afterwards, edits included. Returns (path, written)."""
    path = Path(path)
    if path.is_file():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_init(path, str(path.with_suffix(""))), True
