"""``run_cross_source``: Xiong et al.'s two-stage discriminative distillation network on paired folders.

Stage 1 trains F on source 1 (JOC by default) on the paired split, unless a stage-1 checkpoint is
given; stage 2 trains G on source 2 with ``cross-source``; then test images query the training
images within and across sources (s1→s1, s2→s2, s1→s2, s2→s1).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from compress.data.bundle import DataBundle, DataConfig, build_data
from compress.data.paired import PairedData, SourcePrep, build_paired_data
from compress.data.split import find_split_file, load_split, save_split
from compress.engine.train_config import TrainConfig
from compress.engine.progress import ProgressSink
from compress.engine.stage import StageSpec, run_stage
from compress.errors import CheckpointError, UserInputError
from compress.evaluation.embedding import embed_dataset, score_embeddings, write_outputs
from compress.io import to_jsonable, write_json_atomic
from compress.jobs import preflight
from compress.jobs.metric_learning import EMBEDDING_MODEL
from compress.jobs.rundir import open_run
from compress.models.restore import load_checkpoint


@dataclass(frozen=True)
class CrossSourceConfig:
    """Everything ``compress cross-source`` accepts."""

    source1: str = ""
    source2: str = ""
    teacher: str | None = None  # stage-1 checkpoint F; None → trained here with stage1_method
    stage1_method: str = "joc"
    stage1_params: dict[str, Any] = field(default_factory=dict)
    stage1_train: TrainConfig | None = None  # None → same as train
    backbone: str = "resnet18"
    embedding: str = "pre-bn"
    pretrained: bool = False
    weights: str | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    method_params: dict[str, Any] = field(default_factory=dict)  # cross-source params
    train_ratio: float = 0.8
    image_size1: int | None = None
    image_size2: int | None = None
    eval_metric: str = "euclidean"
    eval_ks: tuple[int, ...] = (1, 5, 10, 20)
    out: str | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        if not self.source1 or not self.source2:
            raise UserInputError("cross-source needs both --source1 DIR and --source2 DIR (paired folders).")


@dataclass
class CrossSourceResult:
    run_dir: str
    stage1_checkpoint: str
    stage2_checkpoint: str
    map: dict[str, float]  # direction → mAP (test queries, training gallery)
    evaluation: dict[str, Any]
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def paired_bundle(p: PairedData) -> DataBundle:
    """The engine's view of the pairs: G's input (source 2) describes the data."""
    s2 = p.source2
    return DataBundle(train=p.train, val=p.val, test=p.test, class_names=p.class_names, in_chans=s2.bands,
                      image_size=s2.image_size, mean=list(s2.mean), std=list(s2.std), split=p.split, bad_files=[],
                      source_name=p.roots[1])


def _stage1(cfg: CrossSourceConfig, paired: PairedData, run, resolved, workers) -> tuple[StageSpec, DataBundle]:
    """The spec and data of F on source 1 over the paired split."""
    if cfg.stage1_method not in EMBEDDING_MODEL:
        raise UserInputError(f"stage-1 method must train an embedding model ({', '.join(EMBEDDING_MODEL)}), "
                             f"got '{cfg.stage1_method}'.")
    d1 = run / "stage1"
    d1.mkdir(parents=True, exist_ok=True)
    save_split(paired.split1, d1)  # build_data reuses it: F never sees G's test images
    data = build_data(DataConfig(data=cfg.source1, image_size=cfg.image_size1, val_fraction=0.0), seed=cfg.train.seed,
                      run_dir=d1, reuse_split=True)
    arch = EMBEDDING_MODEL[cfg.stage1_method]
    kwargs = {"backbone": cfg.backbone, **({"embedding": cfg.embedding} if arch == "embed-bnneck" else {})}
    spec = StageSpec(role="teacher", arch=arch, method=cfg.stage1_method, train=cfg.stage1_train or cfg.train,
                     run_dir=d1, config=resolved, method_params=cfg.stage1_params, model_kwargs=kwargs,
                     init={"pretrained": cfg.pretrained, "backbone_weights": cfg.weights}, resume=cfg.resume,
                     workers=workers)
    return spec, data


def _stage2(cfg: CrossSourceConfig, paired: PairedData, f_man, run, resolved, workers) -> tuple[StageSpec, DataBundle]:
    """The spec and data of G on source 2, F's preprocessing applied to its source-1 images."""
    paired = paired.with_source1(SourcePrep(f_man.in_chans, f_man.image_size, tuple(f_man.mean), tuple(f_man.std)))
    d2 = run / "stage2"
    d2.mkdir(parents=True, exist_ok=True)
    save_split(paired.split, d2)
    spec = StageSpec(role="student", arch=f_man.architecture, method="cross-source", train=cfg.train, run_dir=d2,
                     config=resolved, method_params=cfg.method_params, model_kwargs=dict(f_man.model_kwargs),
                     resume=cfg.resume, workers=workers)
    return spec, paired_bundle(paired)


def _preflight(cfg: CrossSourceConfig, paired: PairedData, spec1: StageSpec, data1: DataBundle, run, resolved,
               workers) -> None:
    """One loss evaluation of each stage, an untrained F standing in for stage 2, before stage 1 trains."""
    from compress.engine.stage import base_manifest, build_model_for_data

    preflight.dry_step(spec1, data1)
    stand_in = build_model_for_data(spec1.arch, data1, **spec1.model_kwargs).eval()
    f_man = base_manifest(spec1.arch, data1, role="teacher", method=spec1.method, config=resolved,
                          model_kwargs=spec1.model_kwargs, task="embedding")
    spec2, data2 = _stage2(cfg, paired, f_man, run, resolved, workers)
    preflight.dry_step(spec2, data2, stand_in)


def run_cross_source(cfg: CrossSourceConfig, progress: ProgressSink | None = None, workers: int = 0) -> CrossSourceResult:
    """Stage 1 (or ``cfg.teacher``) → stage 2 → retrieval in all four directions; files under ``runs/<name>/``."""
    resolved = to_jsonable(cfg)
    with open_run(cfg.out, "cross-source", cfg.resume, resolved, device=cfg.train.device) as run:
        return _run(cfg, run, resolved, progress, workers)


def _run(cfg: CrossSourceConfig, run, resolved, progress, workers) -> CrossSourceResult:
    split = None
    if cfg.teacher:
        ck = load_checkpoint(cfg.teacher)
        sf = find_split_file(ck.path)
        split = load_split(sf) if sf is not None else None
    saved = run / "stage1" / "split.json"
    if split is None and cfg.resume and saved.is_file():
        split = load_split(saved)
    paired = build_paired_data(cfg.source1, cfg.source2, train_ratio=cfg.train_ratio, seed=cfg.train.seed, split=split,
                               image_size1=cfg.image_size1, image_size2=cfg.image_size2)
    if not cfg.teacher:
        spec1, data1 = _stage1(cfg, paired, run, resolved, workers)
        _preflight(cfg, paired, spec1, data1, run, resolved, workers)
        ck = load_checkpoint(run_stage(spec1, data1, progress=progress).checkpoint)
    f_man = ck.manifest
    if not callable(getattr(ck.model, "embed", None)):
        raise CheckpointError(f"Stage-1 checkpoint '{ck.path}' is a '{f_man.architecture}' classifier; cross-source "
                              "needs an embedding model trained by `compress metric-learn --method joc`.")
    if list(f_man.class_names) != paired.class_names:
        raise CheckpointError(f"Stage-1 checkpoint '{ck.path}' was trained on other classes than '{cfg.source1}'.")
    spec, data = _stage2(cfg, paired, f_man, run, resolved, workers)
    paired = paired.with_source1(SourcePrep(f_man.in_chans, f_man.image_size, tuple(f_man.mean), tuple(f_man.std)))
    stage = run_stage(spec, data, teacher=ck.model, progress=progress)
    F, G = ck.model, stage.method.student
    tr, te = paired.train.eval_view(), paired.test
    s1q, s1g = embed_dataset(F, te, part=0)[:2], embed_dataset(F, tr, part=0)[:2]
    s2q, s2g = embed_dataset(G, te, part=1)[:2], embed_dataset(G, tr, part=1)[:2]
    ev = score_embeddings(s1q, s1g, "retrieval", metric=cfg.eval_metric, ks=cfg.eval_ks,
                          cross={"s1->s2": (s1q, s2g), "s2->s1": (s2q, s1g), "s2->s2": (s2q, s2g)})
    ev.checkpoint = stage.checkpoint
    ev = write_outputs(ev, run)
    maps = {("s1->s1" if k == "single" else k): float(v["map"]) for k, v in ev.retrieval.items()}
    result = CrossSourceResult(run_dir=str(run), stage1_checkpoint=str(ck.path),
                               stage2_checkpoint=stage.checkpoint, map=maps, evaluation=ev.to_dict(),
                               data={"source1": cfg.source1, "source2": cfg.source2, "classes": len(paired.class_names),
                                     "train_pairs": len(paired.train), "test_pairs": len(paired.test),
                                     "source1_prep": dataclasses.asdict(paired.source1),
                                     "source2_prep": dataclasses.asdict(paired.source2)})
    write_json_atomic(run / "result.json", result.to_dict())
    return result
