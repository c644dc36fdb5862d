"""The GPU check (issue 29): one command that shows training, AMP, DDP and speed on a CUDA GPU, within a
time limit, writing ``gpu_check.json`` and ``gpu_check.md`` (and ``gpu_check.log``, ``gpu_tests.xml``)
to ``--out`` after every section, so a run stopped at its limit keeps what it measured.

On a lent GPU machine (the project is not installed there: the repository root is put on the path; the
few packages its image lacks travel as wheels, see bench/history/diary.md §Issue 29):

    python bench/gpu_check.py --data gpu_data/aid96 --out $OUT --time-limit 420

Sections, in order (``--sections`` picks some):
  environment  GPU, driver, clocks, versions, which optional packages are there
  gpu-tests    ``pytest -m gpu``: the engine's CUDA branches (bf16 auto, fp16 + GradScaler, channels_last,
               --compile, fused optimizers, cudnn.benchmark, pinned memory + persistent workers, the
               pixel cache on the GPU)
  distill      a real KD run on the reduced AID copy (teacher trained here, baseline, KD student) in fp32
               with TF32 off, compared with the same run on the CPU (bench/gpu_reference.json); then the
               student again in bf16 and fp16 from the same teacher
  ddp          NCCL on one GPU (two ranks), 1 process against 2 (same global batch, --sync-bn), a 2-process
               run killed after its first epoch and resumed against an uninterrupted one
  throughput   ResNet-34 → ResNet-18 KD, 224 px, batch 128: compress, a hand-tuned loop and torchdistill,
               interleaved, images/s medians and ratios, with the GPU's clocks
  latency      the KD student through the PyTorch runner, batch 1 and 32, FP32 and FP16 (ONNX Runtime's
               CUDA provider where that build is installed)

``--smoke`` runs every section on the CPU in miniature (the embedded digits, tiny models): it is a test.
``--device cpu --sections distill`` makes the CPU reference the GPU run is compared with.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ("torch", "torchvision", "timm", "numpy", "safetensors", "typer", "rich", "sklearn", "scipy", "PIL",
            "yaml", "matplotlib", "tifffile", "onnx")
SECTIONS = ("environment", "gpu-tests", "distill", "ddp", "throughput", "latency")


def missing_packages() -> list[str]:
    return [m for m in REQUIRED if importlib.util.find_spec(m) is None]


class Report:
    """Sections' results, rewritten to JSON and Markdown after each one."""

    def __init__(self, out: Path, args: argparse.Namespace) -> None:
        self.out, self.args = out, args
        self.data: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "sections": {}}
        self.start = time.monotonic()
        self.log = (out / "gpu_check.log").open("a")

    def left(self) -> float:
        return self.args.time_limit - (time.monotonic() - self.start)

    def record(self, name: str, result: dict) -> None:
        self.data["sections"][name] = result
        self.data["elapsed_s"] = round(time.monotonic() - self.start, 1)
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=2, default=str))
        (self.out / "gpu_check.md").write_text(self.markdown())

    def markdown(self) -> str:
        from gpu_sections import to_markdown

        return to_markdown(self.data)


def run(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    missing = missing_packages()
    if missing:
        print(f"gpu_check: missing Python packages: {', '.join(missing)}; install them or carry their wheels "
              "(bench/history/diary.md §Issue 29 says how).", file=sys.stderr)
        return 2
    import gpu_sections

    args.out.mkdir(parents=True, exist_ok=True)
    report = Report(args.out, args)
    ctx = gpu_sections.Context.create(args, report)
    wanted = args.sections or list(SECTIONS)
    failed = 0
    for name in wanted:
        est = ctx.estimate(name)
        if report.left() < est:
            report.record(name, {"status": "skipped", "detail": f"time limit: {report.left():.0f} s left, "
                                                                  f"needs about {est:.0f} s"})
            continue
        t0 = time.monotonic()
        print(f"[gpu_check] {name} (about {est:.0f} s, {report.left():.0f} s left)", flush=True)
        try:
            result = gpu_sections.SECTION_FUNCS[name](ctx)
        except Exception as exc:  # a broken section must not cost the others their turn
            result = {"status": "error", "detail": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc(limit=6)}
        result["seconds"] = round(time.monotonic() - t0, 1)
        failed += result.get("status") in ("fail", "error")
        report.record(name, result)
        print(f"[gpu_check] {name}: {result.get('status')} in {result['seconds']} s — {result.get('detail', '')}",
              flush=True)
    print(report.markdown())
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="class-per-folder data (bench/gpu_data.py makes it)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--time-limit", type=float, default=420.0, help="seconds for the whole check")
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, default=None)
    ap.add_argument("--device", default="cuda", help="cuda (the check), or cpu for the reference run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference", type=Path, default=ROOT / "bench" / "gpu_reference.json")
    ap.add_argument("--save-reference", action="store_true",
                    help="store the distill section's result under --seed in --reference (the CPU reference)")
    ap.add_argument("--smoke", action="store_true", help="everything in miniature on the CPU (a test)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.device = "cpu"
    elif args.data is None:
        ap.error("--data is required (except with --smoke): make it with bench/gpu_data.py")
    elif not args.data.is_dir():
        ap.error(f"--data {args.data} is not a folder; make it with bench/gpu_data.py")
    else:
        args.data = args.data.resolve()
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
