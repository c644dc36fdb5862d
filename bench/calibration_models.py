"""Write the layer analyses of the calibration models that torchvision does not build.

The fit (``python -m profiles.calibration``) analyses torchvision models on the fly; detectors come
from packages the toolkit does not depend on and timm models export slowly, so their ONNX graphs are
analysed once here and stored as ``profiles/calibration/models/<model>@<size>.json.gz`` (layer counts only,
no weights). Each model is built from its architecture definition with random weights, exported
to ONNX (opset 17), simplified with onnxsim and analysed with ``profiles.counting.onnx_count``.

    # timm models (EfficientViT; MixNet, EfficientFormer, MobileViT, ViT), in the project's environment
    python bench/calibration_models.py --family efficientvit
    python bench/calibration_models.py --family classifiers
    # Ultralytics YOLO, in an environment with `pip install ultralytics` (AGPL; only the graph is used)
    python bench/calibration_models.py --family yolo
    # YOLOv5, in an environment with `pip install yolov5` (AGPL; only the graph is used)
    python bench/calibration_models.py --family yolov5
    # NetsPresso Trainer's own YOLOX / PIDNet / SegFormer (the models its Benchmarker timed), from a checkout
    # of Nota-NetsPresso/netspresso-trainer (Apache-2.0) and `pip install loguru omegaconf`
    python bench/calibration_models.py --family netspresso --netspresso PATH/TO/netspresso-trainer
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = {
    "efficientvit": [(f"efficientvit_{v}", s) for v in ("b1", "b2", "b3") for s in (224, 256, 288)],
    "yolo": [(f"yolo11{v}", 640) for v in "nsmlx"] + [(f"yolov8{v}", 640) for v in "nsm"],
    # YOLOv5 v7.0 (the `yolov5` package); v5.0's yolov5s differs by a Focus stem (= a 6x6 s2 conv) and SPP
    "yolov5": [("yolov5s", 640)],
    # the non-torchvision classifiers of the NetsPresso Benchmarker tables
    "classifiers": [("mixnet_s", 224), ("mixnet_m", 224), ("mixnet_l", 224), ("efficientformer_l1", 224),
                    ("mobilevit_s", 256), ("vit_tiny_patch16_224", 224)],
    # the Benchmarker's detectors (4 classes) and segmenters (35 classes), at the tables' input sizes
    "netspresso": [("yolox_s", 640), ("yolox_m", 640), ("yolox_l", 640), ("pidnet_s", 512), ("segformer_b0", 512)],
}
NETSPRESSO = {"yolox_s": ("yolox/yolox-s-detection.yaml", 4), "yolox_m": ("yolox/yolox-m-detection.yaml", 4),
              "yolox_l": ("yolox/yolox-l-detection.yaml", 4), "pidnet_s": ("pidnet/pidnet-s-segmentation.yaml", 35),
              "segformer_b0": ("segformer/segformer-b0-segmentation.yaml", 35)}  # name -> (config/model/..., classes)
NETSPRESSO_ROOT: list[Path] = []  # the checkout, set by --netspresso


def _timm_model(name: str):
    import timm

    return timm.create_model(name, pretrained=False, num_classes=1000).eval()


def _ultralytics_model(name: str):
    from ultralytics import YOLO

    model = YOLO(f"{name}.yaml").model.eval()
    for m in model.modules():  # the detect head's export path (no training-time outputs)
        if hasattr(m, "export"):
            m.export = True
        if hasattr(m, "format"):
            m.format = "onnx"
    return model.fuse()


def _yolov5_model(name: str):
    import yolov5
    from yolov5.models.yolo import Model

    model = Model(str(Path(yolov5.__file__).parent / "models" / f"{name}.yaml")).eval()
    model.model[-1].export = True  # one decoded output, as TensorRT engines of it are built
    return model.fuse()


def _netspresso_model(name: str):
    """NetsPresso Trainer's model as its training pipeline exports it (``deploy()``, then ONNX of ``pred``)."""
    import types

    import torch
    from omegaconf import OmegaConf

    if not NETSPRESSO_ROOT:
        raise SystemExit("--family netspresso needs --netspresso PATH (a netspresso-trainer checkout)")
    root = NETSPRESSO_ROOT[0]
    # its package __init__ pulls in the data loaders (OpenCV, ...); only the models are needed
    pkg = types.ModuleType("netspresso_trainer")
    pkg.__path__ = [str(root / "src" / "netspresso_trainer")]
    sys.modules.setdefault("netspresso_trainer", pkg)
    from netspresso_trainer.models import build_model, is_single_task_model

    config, classes = NETSPRESSO[name]
    conf = OmegaConf.load(root / "config" / "model" / config).model
    conf.checkpoint.use_pretrained = False
    conf.single_task_model = is_single_task_model(conf)
    model = build_model(conf, classes, "cpu", False).eval()
    if hasattr(model, "deploy"):  # re-parameterised blocks fold, as before its ONNX export
        model = model.deploy()

    class Pred(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            pred = self.inner(x)["pred"]
            return tuple(pred) if isinstance(pred, (list, tuple)) else pred

    return Pred(model).eval()


BUILDERS = {"netspresso": _netspresso_model, "efficientvit": _timm_model, "classifiers": _timm_model, "yolo": _ultralytics_model,
            "yolov5": _yolov5_model}  # family -> architecture builder (random weights)


def export_and_analyse(name: str, size: int, out_dir: Path, build=_timm_model) -> Path:
    import onnx
    import onnxsim
    import torch

    from profiles.calibration.fit import save_model_analysis
    from profiles.counting.onnx_count import analyze_onnx

    model = build(name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.onnx"
        torch.onnx.export(model, (torch.zeros(1, 3, size, size),), str(path), opset_version=17, dynamo=False,
                          input_names=["input"], output_names=["output"])
        simplified, ok = onnxsim.simplify(onnx.load(str(path)))
        if ok:
            onnx.save(simplified, str(path))
        analysis = analyze_onnx(path, (1, 3, size, size))
    return save_model_analysis(name, size, analysis, out_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", choices=sorted(SPECS), required=True)
    ap.add_argument("--out", type=Path, default=ROOT / "profiles" / "calibration" / "models")
    ap.add_argument("--netspresso", type=Path, help="a checkout of Nota-NetsPresso/netspresso-trainer (--family netspresso)")
    args = ap.parse_args(argv)
    if args.netspresso:
        NETSPRESSO_ROOT.append(args.netspresso.resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    for name, size in SPECS[args.family]:
        path = export_and_analyse(name, size, args.out, BUILDERS[args.family])
        print(f"{name}@{size}: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
