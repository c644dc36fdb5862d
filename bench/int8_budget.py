"""Do the export's checks mean something on real data? (issue 28, item 5)

For each checkpoint: `compress export --fp16 --int8 --int8-flavour both` with every other setting at its
default (INT8 budget 1.0 judged on up to 1,000 labelled validation + training images: top-1 agreement or
OA drop; parity on up to 1,000 test images), then every file scored on the WHOLE test split. Prints, per file: the verdict
parity gave (and why), the fallback's layers and agreement, and the test-split OA drop that the verdict
should have predicted.

    python bench/int8_budget.py CKPT [CKPT ...] --out bench/out/int8-budget --json bench/out/int8_budget.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


# variant → (--int8-cle, --int8-adaround, --int8-bias-correction)
VARIANTS = {"plain": ("off", "off", "off"), "cle": ("on", "off", "off"), "bias-corrected": ("off", "off", "on"),
            "adaround": ("off", "on", "off"), "adaround+bc": ("off", "on", "on"), "auto": ("auto", "auto", "auto")}


def bench_checkpoint(ckpt: str, out: Path, variant: str = "plain", flavour: str = "both",
                     reduce_range: str = "auto") -> list[dict]:
    from export.evaluate import evaluate_onnx
    from export.chain import ExportConfig, export_checkpoint

    if not (out / "export.json").is_file():
        export_checkpoint(ckpt, out, ExportConfig(fp16=True, int8=True, int8_flavour=flavour, force=True,
                                                  int8_reduce_range=reduce_range,
                                                  int8_cle=VARIANTS[variant][0],
                                                  int8_adaround=VARIANTS[variant][1],
                                                  int8_bias_correction=VARIANTS[variant][2]))
    meta = json.loads((out / "export.json").read_text())["result"]
    parity = json.loads((out / "parity.json").read_text())
    fallback = {v["file"]: v["fallback"] for v in meta["int8"]}
    oa = {f: evaluate_onnx(out / f).metrics["oa"] * 100.0 for f in sorted({r["file"] for r in parity["rows"]
                                                                          if r.get("file")})}
    rows = []
    for r in parity["rows"][1:]:
        fb = fallback.get(r["file"]) or {}
        chosen = fb.get("chosen") or {}
        rows.append({"checkpoint": ckpt, "variant": variant, "row": r["name"], "file": r["file"], "parity_passed": r["passed"],
                     "why": r.get("why", ""), "parity_agreement": r["top1_agreement"],
                     "parity_samples": parity["num_samples"], "float_layers": len(chosen.get("float_nodes", [])),
                     "fallback_disagreement": chosen.get("disagreement"), "fallback_images": fb.get("images"),
                     "judge_drop": chosen.get("drop"), "judge_interval": chosen.get("drop_interval"),
                     "test_oa": oa[r["file"]], "test_drop": oa["model.onnx"] - oa[r["file"]]})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--out", default="bench/out/int8-budget")
    ap.add_argument("--json", default=None)
    ap.add_argument("--variants", nargs="+", default=["plain", "bias-corrected"], choices=list(VARIANTS),
                    help="export each checkpoint with the INT8 fixes off (plain), one or both on, or auto (the default)")
    ap.add_argument("--flavour", default="both", choices=["both", "cpu", "trt"])
    ap.add_argument("--reduce-range", default="auto", choices=["auto", "on", "off"],
                    help="CPU flavour's 7-bit weights: 'on' writes the file an AVX2-only CPU gets (its accuracy is the "
                         "same on any CPU: 7-bit weights cannot saturate VPMADDUBSW), auto decides from this CPU")
    a = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    rows = []
    for i, ck in enumerate(a.checkpoints):
        for v in a.variants:
            rows += bench_checkpoint(ck, Path(a.out) / f"{i}-{v}", v, a.flavour, a.reduce_range)
    t = Table(title="Export checks against the whole test split (budget 1.0)")
    for col in ("checkpoint", "variant", "row", "parity", "agree %", "float", "fallback changed %", "judged drop [95 %]",
                "test OA %", "test drop pt"):
        t.add_column(col)
    for r in rows:
        iv = r["judge_interval"]
        name = next((q for q in reversed(Path(r["checkpoint"]).parts) if q not in ("best", "last", "checkpoints")), "?")
        t.add_row(name, r["variant"], r["row"], "pass" if r["parity_passed"] else f"FAIL: {r['why']}",
                  f"{100 * r['parity_agreement']:.2f}", str(r["float_layers"]),
                  "-" if r["fallback_disagreement"] is None else f"{r['fallback_disagreement']:.2f} of {r['fallback_images']}",
                  "-" if iv is None else f"{r['judge_drop']:+.2f} [{iv[0]:+.2f}, {iv[1]:+.2f}]",
                  f"{r['test_oa']:.2f}", f"{r['test_drop']:+.2f}")
    Console(width=200).print(t)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
