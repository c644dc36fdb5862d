"""Write the layer analyses of the calibration models that torchvision does not build.

The fit (``python -m profiles.calibration``) analyses torchvision models on the fly; detectors come
from packages the toolkit does not depend on and timm models export slowly, so their ONNX graphs are
analysed once here and stored as ``profiles/calibration/models/<model>@<size>.json.gz`` (layer counts only,
no weights). Each model is built from its architecture definition with random weights, exported
to ONNX (opset 17), simplified with onnxsim and analysed with ``profiles.onnx_count``.

    # timm models (EfficientViT; MixNet, EfficientFormer, MobileViT, ViT), in the project's environment
    python bench/calibration_models.py --family efficientvit
    python bench/calibration_models.py --family classifiers
    # Ultralytics YOLO, in an environment with `pip install ultralytics` (AGPL; only the graph is used)
    python bench/calibration_models.py --family yolo
    # YOLOv5, in an environment with `pip install yolov5` (AGPL; only the graph is used)
    python bench/calibration_models.py --family yolov5
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
}


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


BUILDERS = {"efficientvit": _timm_model, "classifiers": _timm_model, "yolo": _ultralytics_model,
            "yolov5": _yolov5_model}  # family -> architecture builder (random weights)


def export_and_analyse(name: str, size: int, out_dir: Path, build=_timm_model) -> Path:
    import onnx
    import onnxsim
    import torch

    from profiles.calibration import save_model_analysis
    from profiles.onnx_count import analyze_onnx

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
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, size in SPECS[args.family]:
        path = export_and_analyse(name, size, args.out, BUILDERS[args.family])
        print(f"{name}@{size}: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
