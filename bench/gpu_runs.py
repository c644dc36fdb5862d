"""The training sections of ``bench/gpu_check.py``: a real distillation run against its CPU reference, DDP
with two processes on the one GPU (and NCCL's answer to that), and the student's latency."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from gpu_sections import LOSS_RTOL, OA_MIN_TOL, ROOT, Context, history, last_line, torchrun_cmd, wait_for


def distill_config(ctx: Context) -> dict[str, Any]:
    if ctx.smoke:
        return {"data": None, "train_ratio": 0.8, "image_size": 8, "teacher": "cifar_resnet8",
                "student": "cifar_resnet8", "epochs": 1, "batch_size": 128, "seed": ctx.args.seed}
    return {"data": Path(ctx.args.data).name, "train_ratio": 0.5, "image_size": 64, "teacher": "resnet18",
            "student": "mobilenetv3_small_100", "epochs": 8, "batch_size": 64, "seed": ctx.args.seed}


def _stage(run: Path) -> dict[str, Any]:
    rows = history(run)
    metrics = json.loads((run / "metrics.json").read_text())
    ips = sorted(float(r["images_per_second"]) for r in rows)
    return {"test_oa": metrics["test"]["oa"], "epoch1_loss": float(rows[0]["train_loss"]),
            "final_loss": float(rows[-1]["train_loss"]), "images_per_second": ips[len(ips) // 2],
            "epochs": len(rows), "best_epoch": metrics["best_epoch"]}


def _compare(got: dict, ref: dict, spread: dict | None) -> tuple[bool, list[str]]:
    """Each role's first-epoch loss within LOSS_RTOL and test OA within max(OA_MIN_TOL, 2 × the CPU's
    seed-to-seed difference) of the CPU reference at the same seed."""
    ok, rows = True, []
    for role, g in got.items():
        r = ref.get(role)
        if r is None:
            continue
        dl = abs(g["epoch1_loss"] - r["epoch1_loss"]) / max(abs(r["epoch1_loss"]), 1e-12)
        tol = max(OA_MIN_TOL, 2 * abs(spread[role]["test_oa"] - r["test_oa"])) if spread and role in spread \
            else OA_MIN_TOL
        doa = g["test_oa"] - r["test_oa"]
        good = dl <= LOSS_RTOL and abs(doa) <= tol
        ok &= good
        rows.append(f"| {role} | {r['epoch1_loss']:.4f} | {g['epoch1_loss']:.4f} | {100 * dl:.2f} % | "
                    f"{100 * r['test_oa']:.2f} | {100 * g['test_oa']:.2f} | {100 * doa:+.2f} (±{100 * tol:.1f}) | "
                    f"{'ok' if good else 'OFF'} |")
    return ok, rows


def distill(ctx: Context) -> dict:
    c = distill_config(ctx)
    common = ["--student", c["student"], "--method", "kd", "--epochs", c["epochs"], "--batch-size", c["batch_size"],
              "--seed", c["seed"], "--device", ctx.device, "--json"]
    data = ["--data", ctx.args.data, "--train-ratio", c["train_ratio"]] if c["data"] else []
    run = ctx.work / "distill-fp32"
    # fp32 means fp32 on both sides: cuDNN would run convolutions in TF32 by default
    p = ctx.compress(["distill", *data, "--image-size", c["image_size"], "--teacher-arch", c["teacher"], *common,
                      "--amp", "off", "--out", run], env=ctx.env(NVIDIA_TF32_OVERRIDE="0"), label="distill fp32")
    if p.returncode:
        return {"status": "error", "detail": f"compress distill failed: {last_line(p.stderr)}", "config": c}
    got = {role: _stage(run / role) for role in ("teacher", "baseline", "student")}
    ctx.state["student"] = run / "student"
    out: dict[str, Any] = {"config": c, "fp32": got, "device": ctx.device}
    ref = _reference(ctx, c)
    table = ["| role | CPU epoch-1 loss | here | Δ | CPU test OA % | here | Δ pt (tol) | |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    status, detail = "pass", "no CPU reference for this configuration"
    if ref is not None:
        ok, rows = _compare(got, ref["seeds"][str(c["seed"])], ref["seeds"].get(str(c["seed"] + 1)))
        table += rows
        status = "pass" if ok else "fail"
        detail = f"{'matches' if ok else 'differs from'} the CPU run at seed {c['seed']} ({ref.get('machine', '?')})"
    teacher_ckpt = run / "teacher" / "checkpoints" / "best"
    # the reference needs the fp32 run alone; elsewhere each precision the device has
    amps = () if ctx.args.save_reference else ("bf16", "fp16") if ctx.cuda else ("bf16",)
    table += ["", "| student precision | test OA % | Δ vs fp32 (goal ≤ 1 pt) | epoch-1 loss | images/s |",
              "| --- | ---: | ---: | ---: | ---: |",
              f"| fp32 (TF32 off) | {100 * got['student']['test_oa']:.2f} | | {got['student']['epoch1_loss']:.4f} | "
              f"{got['student']['images_per_second']:.0f} |"]
    for amp in amps:
        r = ctx.work / f"distill-{amp}"
        p = ctx.compress(["distill", "--teacher", teacher_ckpt, *common, "--amp", amp, "--no-baseline", "--out", r],
                         label=f"distill {amp}")
        if p.returncode:
            out[amp] = {"error": last_line(p.stderr)}
            table.append(f"| {amp} | failed: {last_line(p.stderr)} | | | |")
            status = "fail"
            continue
        s = _stage(r / "student")
        out[amp] = {"student": s}
        d = 100 * (s["test_oa"] - got["student"]["test_oa"])
        table.append(f"| {amp} | {100 * s['test_oa']:.2f} | {d:+.2f} | {s['epoch1_loss']:.4f} | "
                     f"{s['images_per_second']:.0f} |")
    if ctx.args.save_reference:
        _save_reference(ctx, c, got)
    kd, base = got["student"]["test_oa"], got["baseline"]["test_oa"]
    detail += f"; teacher {100 * got['teacher']['test_oa']:.1f} %, baseline {100 * base:.1f} %, KD {100 * kd:.1f} %"
    return {"status": status, "detail": detail, **out, "table": table}


def _reference(ctx: Context, c: dict) -> dict | None:
    path = Path(ctx.args.reference)
    if not path.is_file():
        return None
    ref = json.loads(path.read_text())
    same = {k: v for k, v in c.items() if k != "seed"} == {k: v for k, v in ref["config"].items() if k != "seed"}
    return ref if same and str(c["seed"]) in ref["seeds"] else None


def _save_reference(ctx: Context, c: dict, got: dict) -> None:
    from compress.hardware import cpu_info

    path = Path(ctx.args.reference)
    ref = json.loads(path.read_text()) if path.is_file() else {}
    if ref.get("config", {}) != {**c, "seed": ref.get("config", {}).get("seed")}:
        ref = {"config": {**c, "seed": None}, "seeds": {}}
    ref["machine"] = f"{ctx.device}: {cpu_info().describe()}" if not ctx.cuda else ctx.device
    ref["command"] = " ".join(["python bench/gpu_check.py", *sys.argv[1:]])
    ref["seeds"][str(c["seed"])] = got
    path.write_text(json.dumps(ref, indent=2) + "\n")


def _weights_diff(a: Path, b: Path) -> tuple[float, float]:
    """Largest absolute and relative difference of the float tensors of two runs' last checkpoints."""
    from safetensors.torch import load_file

    wa = load_file(str(a / "checkpoints" / "last" / "model.safetensors"))
    wb = load_file(str(b / "checkpoints" / "last" / "model.safetensors"))
    abs_d = rel_d = 0.0
    for k, t in wa.items():
        if t.is_floating_point():
            d = (t - wb[k]).abs()
            abs_d = max(abs_d, float(d.max()))
            rel_d = max(rel_d, float((d / (t.abs() + 1e-3)).max()))
    return abs_d, rel_d


NCCL_PROBE = """
import torch, torch.distributed as dist
torch.cuda.set_device(0)
dist.init_process_group("nccl")
t = torch.ones(1, device="cuda")
dist.all_reduce(t)
print("all_reduce over", dist.get_world_size(), "ranks:", t.item())
dist.destroy_process_group()
"""


def ddp(ctx: Context) -> dict:
    dev = "cuda" if ctx.cuda else "cpu"
    base = ["train", "--model", "cifar_resnet8", "--image-size", 16 if ctx.cuda else 8, "--batch-size", 256,
            "--lr", 0.05, "--seed", 3, "--device", dev, "--amp", "off", "--workers", 0, "--json"]
    env = ctx.env(NVIDIA_TF32_OVERRIDE="0")
    w = ctx.work / "ddp"
    out: dict[str, Any] = {}
    table = ["| check | result |", "| --- | --- |"]
    if ctx.cuda:
        probe = ctx.work / "nccl_probe.py"
        probe.write_text(NCCL_PROBE)
        p = ctx.run(torchrun_cmd(2, [str(probe)]), timeout=90, label="NCCL, two ranks on one GPU")
        dup = [ln for ln in (p.stdout + p.stderr).splitlines() if "Duplicate GPU" in ln or "all_reduce over" in ln]
        out["nccl_one_gpu"] = {"rc": p.returncode, "line": (dup or [last_line(p.stderr)])[0][:300]}
        table.append(f"| NCCL, 2 ranks on 1 GPU | rc {p.returncode}: {out['nccl_one_gpu']['line']} |")
    rtol, atol = (1e-3, 1e-4) if ctx.cuda else (1e-4, 1e-5)
    one = ctx.compress([*base, "--epochs", 1, "--sync-bn", "--out", w / "one"], env=env, label="1 process")
    two = ctx.torchrun(2, [*base, "--epochs", 1, "--sync-bn", "--out", w / "two"], env=env, label="2 processes")
    if one.returncode or two.returncode:
        return {"status": "error", "detail": f"a run failed: {last_line(one.stderr) or last_line(two.stderr)}", **out}
    a, r = _weights_diff(w / "one", w / "two")
    same = a <= atol + rtol or r <= rtol
    out["one_vs_two"] = {"max_abs": a, "max_rel": r, "rtol": rtol, "atol": atol, "ok": same}
    table.append(f"| 1 process × 256 vs 2 × 128, --sync-bn, 1 epoch | max abs Δw {a:.2e}, max rel {r:.2e} "
                 f"({'ok' if same else 'OFF'}; tolerance rel {rtol:g}) |")
    full = ctx.torchrun(2, [*base, "--epochs", 3, "--out", w / "full"], env=env, label="2 processes, 3 epochs")
    cut = w / "cut"
    proc = subprocess.Popen(torchrun_cmd(2, ["-m", "compress", *map(str, [*base, "--epochs", 3, "--out", cut])]),
                            env={**env, **({} if ctx.cuda else {"OMP_NUM_THREADS": "1"})}, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    state = cut / "checkpoints" / "last" / "train_state.json"
    written = wait_for(state, min(120.0, ctx.report.left()))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if full.returncode or not written:
        return {"status": "error", "detail": "the 2-process runs for resume did not start or finish", **out}
    from compress.engine.state import load_state

    saved = load_state(state.parent)
    killed_after = int(saved["epoch"])
    resumed = ctx.torchrun(2, [*base, "--epochs", 3, "--out", cut, "--resume"], env=env, label="resume")
    if resumed.returncode:
        return {"status": "error", "detail": f"resume failed: {last_line(resumed.stderr)}", **out}
    a2, r2 = _weights_diff(w / "full", cut)
    kept = history(cut)[0]["epoch_seconds"] == str(saved["history"][0]["epoch_seconds"])
    resumed_ok = (a2 <= atol + rtol or r2 <= rtol) and kept and killed_after < 3
    out["resume"] = {"killed_after_epoch": killed_after, "max_abs": a2, "max_rel": r2, "epoch1_kept": kept,
                     "ok": resumed_ok}
    table.append(f"| 2 processes killed after epoch {killed_after}, resumed, vs uninterrupted | max abs Δw {a2:.2e}, "
                 f"max rel {r2:.2e}; epoch 1 {'kept, not retrained' if kept else 'RETRAINED'} "
                 f"({'ok' if resumed_ok else 'OFF'}) |")
    ok = same and resumed_ok
    return {"status": "pass" if ok else "fail", "table": table, **out,
            "detail": f"1 vs 2 processes max rel {r:.1e}; resume max rel {r2:.1e}"}


def latency(ctx: Context) -> dict:
    import copy

    import numpy as np
    import torch

    from compress.models.restore import load_checkpoint
    from runtime.latency import measure_latency
    from runtime.torch_runner import TorchRunner

    path = ctx.state.get("student")
    if path is None:
        return {"status": "skipped", "detail": "no student: the distill section did not run"}
    ckpt = load_checkpoint(path)
    m = ckpt.manifest
    warmup, iters = (2, 5) if ctx.smoke else (30, 200)
    table = ["| runner | precision | batch | p50 ms | p90 ms | images/s |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    rows = []
    for precision, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        if dtype == torch.float16 and not ctx.cuda:
            continue
        model = copy.deepcopy(ckpt.model).to(dtype)
        for batch in (1, 32):
            x = np.random.default_rng(0).random((batch, m.in_chans, m.image_size, m.image_size)).astype(
                np.float16 if dtype == torch.float16 else np.float32)
            runner = TorchRunner(model, device=ctx.device, input_dtype=str(x.dtype))
            st = measure_latency(runner, {"input": x}, warmup=warmup, iters=iters)
            rows.append({"runner": "torch", "precision": precision, "batch": batch, "p50_ms": st.p50_ms,
                         "p90_ms": st.p90_ms, "images_per_second": batch * 1000 / st.p50_ms})
            table.append(f"| PyTorch (eager, H2D copy included) | {precision} | {batch} | {st.p50_ms:.3f} | "
                         f"{st.p90_ms:.3f} | {batch * 1000 / st.p50_ms:.0f} |")
    try:
        from runtime.onnxrt import available_providers

        ort = ctx.cuda and "CUDAExecutionProvider" in available_providers()
    except ImportError:
        ort = False
    note = "ONNX Runtime's CUDA provider measured" if ort else \
        "ONNX Runtime's CUDA provider is not usable here (onnxruntime-gpu does not fit the 64 MiB carry)"
    if ort:
        rows += _ort_rows(ctx, path, m, table, warmup, iters)
    return {"status": "pass", "detail": f"{m.architecture} {m.image_size} px; {note}", "rows": rows, "table": table,
            "model": m.architecture}


def _ort_rows(ctx: Context, path: Path, m, table: list[str], warmup: int, iters: int) -> list[dict]:
    import numpy as np

    from runtime.latency import measure_latency
    from runtime.onnxrt import OnnxrtRunner

    out = ctx.work / "onnx"
    p = ctx.compress(["export", path, "-o", out, "--fp16"], label="export for ONNX Runtime CUDA")
    if p.returncode:
        table.append(f"| ONNX Runtime CUDA | export failed: {last_line(p.stderr)} | | | | |")
        return []
    rows = []
    for name, dtype in (("model.onnx", np.float32), ("model_fp16.onnx", np.float32)):
        if not (out / name).is_file():
            continue
        for batch in (1, 32):
            x = np.random.default_rng(0).random((batch, m.in_chans, m.image_size, m.image_size)).astype(dtype)
            runner = OnnxrtRunner(out / name, providers=["CUDAExecutionProvider"])
            st = measure_latency(runner, {runner_input(runner): x}, warmup=warmup, iters=iters)
            prec = "fp16" if "fp16" in name else "fp32"
            rows.append({"runner": "onnxruntime-cuda", "precision": prec, "batch": batch, "p50_ms": st.p50_ms})
            table.append(f"| ONNX Runtime CUDA | {prec} | {batch} | {st.p50_ms:.3f} | {st.p90_ms:.3f} | "
                         f"{batch * 1000 / st.p50_ms:.0f} |")
    return rows


def runner_input(runner) -> str:
    with runner:
        return runner.input_specs()[0].name
