"""A ``compress pipeline`` step, and what it hands to the steps after it: one small frozen dataclass per kind.

A step returns one of these; the pipeline stores it as JSON in ``.pipeline/STEP.json`` and reads it back
with :func:`read_outputs`, so later steps and the report use attributes, never string keys. The JSON keys
are the fields' names, as records written before these types existed used: ``from_dict`` reads those
records too (missing fields take their defaults, unknown keys are ignored, ``"int8 (cpu)"`` precisions are
split into precision and flavour).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol

if TYPE_CHECKING:
    from compress.engine.progress import ProgressSink
    from compress.jobs.recipe import Recipe

Row = dict[str, Any]  # one training row (``compress.jobs.train_distill``): checkpoint, method, test_oa, params_m, …


@dataclass(frozen=True)
class Step:
    """One step of a pipeline run: its name (``student:kd``), kind, the settings its key hashes, the steps it
    reads and its folder (relative to the run folder)."""

    name: str
    kind: str  # teacher | baseline | student | export | profile | report
    settings: dict[str, Any]
    reads: tuple[str, ...] = ()
    folder: str = ""


class PipelineView(Protocol):
    """What a step function and the report see of the running pipeline (:class:`compress.jobs.pipeline.Pipeline`)."""

    recipe: Recipe
    recipe_path: str
    run: Path
    progress: ProgressSink | None
    steps: list[Step]
    records: dict[str, dict[str, Any]]

    def outputs(self, name: str) -> StepOutputs: ...


def _known(cls: type, d: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass(frozen=True)
class TeacherOutputs:
    """The teacher (or the ensemble's members) the students learn from, and the split every stage uses."""

    checkpoints: tuple[str, ...]
    weights: tuple[float, ...] = ()  # ensemble weights; () = equal
    split: str | None = None  # split.json of the teacher's run (None: the recipe's data decides)
    row: Row | None = None  # the teacher's own training row when the pipeline trained it

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TeacherOutputs:
        k = _known(cls, d)
        return cls(**{**k, "checkpoints": tuple(k.get("checkpoints", ())), "weights": tuple(k.get("weights", ()))})


@dataclass(frozen=True)
class BaselineOutputs:
    """A zoo network trained without a teacher."""

    checkpoint: str
    row: Row

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BaselineOutputs:
        return cls(**_known(cls, d))


@dataclass(frozen=True)
class ScoredFile:
    """One exported classifier scored on the run's test split (OA, kappa, macro-F1 as fractions)."""

    file: str
    precision: str  # fp32 | fp16 | int8
    oa: float | None
    kappa: float | None = None
    macro_f1: float | None = None
    flavour: str | None = None  # INT8 flavour (cpu | trt); None for float files
    int8_fixes: dict[str, Any] | None = None  # what AdaRound / bias correction did, the layers kept float
    parity_failed: str | None = None  # the failed parity row's name; None when parity passed

    @property
    def label(self) -> str:
        """``int8 (trt)``, ``fp16``: the precision as the report writes it."""
        return self.precision + (f" ({self.flavour})" if self.flavour else "")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScoredFile:
        k = _known(cls, d)
        precision, _, rest = str(k.get("precision", "fp32")).partition(" (")
        if rest and not k.get("flavour"):  # records before the flavour had a field of its own
            k["flavour"] = rest.rstrip(")")
        return cls(**{**k, "precision": precision})


def scored_files(items: Any) -> tuple[ScoredFile, ...]:
    return tuple(x if isinstance(x, ScoredFile) else ScoredFile.from_dict(x) for x in items or ())


@dataclass(frozen=True)
class StudentOutputs:
    """A trained student: distilled, pruned and recovered, searched for a device, or quantised (QAD)."""

    checkpoint: str
    row: Row  # its training row; ``row["role"]`` says how it was made
    teacher_row: Row | None = None  # the teacher scored in the same run (a given teacher checkpoint)
    baseline_row: Row | None = None  # the same network trained without a teacher
    chosen: str | None = None  # why this network (the default student: the teacher pruned …)
    search: dict[str, Any] | None = None  # the device search's candidates and choice
    oa_before_recovery: float | None = None  # pruned students
    files: tuple[ScoredFile, ...] = ()  # QAD students: their INT8 file(s), scored
    accuracy: dict[str, Any] | None = None  # QAD students: FP32 / fake-quant / INT8 accuracies

    @property
    def method(self) -> str:
        return str(self.row.get("method", "ce"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudentOutputs:
        k = _known(cls, d)
        return cls(**{**k, "files": scored_files(k.get("files"))})


@dataclass(frozen=True)
class ExportOutputs:
    """One checkpoint exported: its ONNX files scored, the export's outcome and its TensorRT status."""

    checkpoint: str
    files: tuple[ScoredFile, ...] = ()
    outcome: str = "ok"  # ok | parity-failed (export.chain's outcomes)
    message: str = ""
    engine_status: str | None = None  # None: no TensorRT engine asked for
    notes: tuple[str, ...] = ()
    dir: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExportOutputs:
        k = _known(cls, d)
        return cls(**{**k, "files": scored_files(k.get("files")), "notes": tuple(k.get("notes") or ()),
                      "message": k.get("message") or ""})


@dataclass(frozen=True)
class DeviceEstimate:
    """The estimator's latency for one device profile (ms) and its 80 % band."""

    ms: float
    low_ms: float
    high_ms: float
    power_mode: str | None = None


@dataclass(frozen=True)
class ProfileRow:
    """One file's counts, host latency (mean and p90 ms, measured) and per-device estimates."""

    params: int | None = None
    macs: int | None = None
    file_bytes: int | None = None
    peak_act_bytes: int | None = None
    host_ms: float | None = None
    host_p90_ms: float | None = None
    host: str | None = None  # the host CPU's name
    estimates: dict[str, DeviceEstimate] = field(default_factory=dict)  # device spec → estimate

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProfileRow:
        k = _known(cls, d)
        est = {t: e if isinstance(e, DeviceEstimate) else DeviceEstimate(**_known(DeviceEstimate, e))
               for t, e in (k.get("estimates") or {}).items()}
        return cls(**{**k, "estimates": est})


@dataclass(frozen=True)
class ProfileOutputs:
    files: dict[str, ProfileRow] = field(default_factory=dict)  # ONNX path → its profile

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProfileOutputs:
        return cls({f: ProfileRow.from_dict(r) for f, r in (d.get("files") or {}).items()})


@dataclass(frozen=True)
class ReportOutputs:
    paths: dict[str, str] = field(default_factory=dict)  # md | html | plot names → path

    def to_json(self) -> dict[str, str]:
        return dict(self.paths)  # stored flat, as the report's record always was

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReportOutputs:
        return cls({k: str(v) for k, v in d.items() if isinstance(v, str)})


StepOutputs = TeacherOutputs | BaselineOutputs | StudentOutputs | ExportOutputs | ProfileOutputs | ReportOutputs

OUTPUT_TYPES: dict[str, type] = {"teacher": TeacherOutputs, "baseline": BaselineOutputs, "student": StudentOutputs,
                                 "export": ExportOutputs, "profile": ProfileOutputs, "report": ReportOutputs}


def read_outputs(kind: str, d: Mapping[str, Any]) -> StepOutputs:
    """A step record's ``outputs`` (JSON) as its kind's dataclass."""
    return OUTPUT_TYPES[kind].from_dict(d)


def outputs_json(outputs: StepOutputs) -> dict[str, Any]:
    """What a step record stores: the dataclass's fields as JSON (a report: its paths, flat)."""
    from compress.io import to_jsonable

    return outputs.to_json() if isinstance(outputs, ReportOutputs) else to_jsonable(outputs)
