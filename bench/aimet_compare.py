"""Our INT8 fixes against Qualcomm AIMET's (issue 33 item 5): the same FP32 file, the same calibration images,
every INT8 file scored on the whole test split in the same ONNX Runtime.

AIMET's `aimet-onnx` requires the CPU `onnxruntime` package, whose install replaces `onnxruntime-gpu`'s
module, so it lives in a virtual environment of its own and this script runs in three steps:

    python3 -m venv /tmp/aimetv && /tmp/aimetv/bin/pip install torch==2.14.1 aimet-onnx
    python bench/aimet_compare.py calib EXPORT                 # our venv: the calibration images → EXPORT/aimet/
    /tmp/aimetv/bin/python bench/aimet_compare.py quantize EXPORT [--iterations 1000]
    python bench/aimet_compare.py score EXPORT [--ours bench/out/quantize.json]

EXPORT is a folder an export wrote (model.onnx, export.json), e.g. one of `bench/quantize.py`'s. AIMET runs
its per-channel configuration (weights symmetric per output channel, activations asymmetric 8-bit, biases
float: the scheme of our CPU flavour), the `tf_enhanced` (SQNR) calibration its PTQ guide recommends, and:
PTQ, AdaRound, CLE (its `equalize_model`: BN fold, ReLU6 replaced by ReLU, cross-layer scaling, high-bias
fold), CLE + AdaRound. AIMET also quantises every op's output (its default config), where our files leave
non-compute ops (Add, Mul, pooling inputs) to the runtime.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

VARIANTS = ("ptq", "adaround", "cle", "cle+adaround")


def calib(export: Path, images: int) -> None:
    """Our venv: the training images the export calibrated on (same loader, same draw) → aimet/calib.npy."""
    import numpy as np

    from compress.data.samples import load_samples
    from compress.models.restore import load_checkpoint

    ckpt = load_checkpoint(json.loads((export / "export.json").read_text())["checkpoint"])
    x = load_samples(ckpt.path, ckpt.manifest, "train", images).images.numpy().astype(np.float32)
    (export / "aimet").mkdir(exist_ok=True)
    np.save(export / "aimet" / "calib.npy", x)


def quantize(export: Path, iterations: int, batch: int) -> None:
    """AIMET's venv: one QDQ file per variant → aimet/<variant>.onnx, its wall time → aimet/seconds.json."""
    import copy
    import os

    import numpy as np
    import onnx
    from aimet_onnx import QuantizationSimModel, apply_adaround
    from aimet_onnx.cross_layer_equalization import equalize_model
    import aimet_onnx.common.quantsim_config as qc

    config = os.path.join(os.path.dirname(qc.__file__), "default_config_per_channel.json")
    x = np.load(export / "aimet" / "calib.npy")
    fp32 = onnx.load(str(export / "model.onnx"))
    name = fp32.graph.input[0].name
    fixed = fp32.graph.input[0].type.tensor_type.shape.dim[0].dim_value
    batch = fixed or batch  # an export with a fixed batch (the default, 1) takes only that
    inputs = [{name: x[i:i + batch]} for i in range(0, len(x), batch)]
    seconds = {}
    for v in VARIANTS:
        t0 = time.perf_counter()
        model = copy.deepcopy(fp32)
        if v.startswith("cle"):
            equalize_model(model)
        sim = QuantizationSimModel(model, quant_scheme="tf_enhanced", config_file=config)
        if v.endswith("adaround"):
            apply_adaround(sim, inputs, num_iterations=iterations)
        sim.compute_encodings(inputs)
        onnx.save(sim.to_onnx_qdq(prequantize_constants=True), str(export / "aimet" / f"{v}.onnx"))
        seconds[v] = time.perf_counter() - t0
        (export / "aimet" / "seconds.json").write_text(json.dumps(seconds))


def score(export: Path, ours: Path | None) -> None:
    """Our venv: each AIMET file, given the FP32 file's manifest, scored on the whole test split."""
    import onnx

    from quantize import TestSplit  # bench/quantize.py: the test split decoded once

    meta = {p.key: p.value for p in onnx.load(str(export / "model.onnx")).metadata_props}
    seconds = json.loads((export / "aimet" / "seconds.json").read_text())
    test = TestSplit(export / "model.onnx")
    fp32 = test.oa(export / "model.onnx")
    print(f"{export}: FP32 {fp32:.2f} % test OA; drops in points")
    print(f"{'AIMET variant':16s} {'OA %':>7s} {'drop':>6s} {'seconds':>8s}")
    for v in VARIANTS:
        src = export / "aimet" / f"{v}.onnx"
        if not src.is_file():
            continue
        m = onnx.load(str(src))
        onnx.helper.set_model_props(m, dict(meta, precision="int8", int8_flavour="aimet", aimet=v))
        dst = export / f"aimet_{v.replace('+', '_')}.onnx"  # beside export.json: scored on its run's test split
        onnx.save(m, str(dst))
        oa = test.oa(dst)
        print(f"{v:16s} {oa:7.2f} {fp32 - oa:6.2f} {seconds[v]:8.0f}")
    if ours is not None and ours.is_file():
        for row in json.loads(ours.read_text())["rows"]:
            if Path(row["checkpoint"]).resolve() == Path(json.loads((export / "export.json").read_text())
                                                         ["checkpoint"]).resolve():
                print("ours (bench/quantize.py, CPU flavour):")
                for m, v in row["methods"].items():
                    print(f"{m:16s} {v['oa']['cpu']:7.2f} {row['fp32_oa'] - v['oa']['cpu']:6.2f} {v['seconds']:8.0f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["calib", "quantize", "score"])
    ap.add_argument("export", type=Path)
    ap.add_argument("--images", type=int, default=256, help="calibration images (the export's default)")
    ap.add_argument("--iterations", type=int, default=1000, help="AdaRound steps a layer (ours: 1000)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--ours", type=Path, default=None, help="bench/quantize.py's --json, to print beside")
    a = ap.parse_args(argv)
    if a.step == "calib":
        calib(a.export, a.images)
    elif a.step == "quantize":
        quantize(a.export, a.iterations, a.batch)
    else:
        score(a.export, a.ours)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
