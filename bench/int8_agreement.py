"""How often do three executions of the same INT8 Q/DQ file agree on the top-1 class? (issue 12, QAD parity)

    python bench/int8_agreement.py --run bench/out/qad-pruned --checkpoint bench/out/rec-mag-auto/student

On the run's post-training file (``export/model_int8_ptq.onnx``): the fake-quant PyTorch interpreter that QAD
trains (``compress.models.qdq.QDQGraphModule``), ONNX Runtime with graph optimisations off (Q/DQ around float
ops, as written) and ONNX Runtime as deployed (fused integer kernels). Prints pairwise top-1 agreement, max
|Δlogit| and each one's OA on the first N test images of the checkpoint's split.
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a `compress quantize` run folder")
    ap.add_argument("--checkpoint", required=True, help="the checkpoint it quantised (for its test split)")
    ap.add_argument("--samples", type=int, default=1024)
    ap.add_argument("--reduce-range", action="store_true", help="as the run's flavour decided (7-bit weights)")
    a = ap.parse_args(argv)

    import numpy as np
    import torch

    from compress.data.samples import load_samples
    from compress.hardware import cpu_info
    from compress.models.restore import load_checkpoint
    from compress.models.qdq import QDQGraphModule
    from runtime.onnxrt import OnnxrtRunner

    ck = load_checkpoint(a.checkpoint)
    s = load_samples(ck.path, ck.manifest, "test", a.samples)
    x, y = s.images.numpy(), np.asarray(s.labels)
    exp = Path(a.run) / "export"
    sim = QDQGraphModule(exp / "model_int8_ptq.onnx", exp / "model_pre.onnx", reduce_range=a.reduce_range).eval()
    with torch.no_grad():
        logits = {"fake-quant PyTorch": torch.cat([sim(torch.from_numpy(x[i:i + 64])) for i in range(0, len(x), 64)]).numpy()}
    for label, fuse in (("ORT as written", False), ("ORT fused", True)):
        with OnnxrtRunner(exp / "model_int8_ptq.onnx", providers="cpu", fuse=fuse) as r:
            logits[label] = np.concatenate([r.infer({"input": x[i:i + 64]})["logits"] for i in range(0, len(x), 64)])
    print(f"CPU: {cpu_info().describe()}; {len(x)} test images of {ck.path}")
    print(f"{'pair':45s} {'top-1 agreement':>16s} {'max |Δlogit|':>13s}")
    for (na, la), (nb, lb) in itertools.combinations(logits.items(), 2):
        print(f"{na + ' vs ' + nb:45s} {100 * (la.argmax(1) == lb.argmax(1)).mean():15.2f}% {np.abs(la - lb).max():13.3f}")
    for name, lg in logits.items():
        print(f"OA {name:25s} {100 * (lg.argmax(1) == y).mean():6.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
