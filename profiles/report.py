"""Write a ``ProfileReport``: ``profile.json``, ``profile.md`` and, when models carry accuracy,
``accuracy_vs_latency.png`` (estimates drawn hollow so they are never mistaken for measurements)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from compress.io import to_jsonable, write_json_atomic, write_text_atomic
from profiles.api import ProfileReport


def _fmt(n: float | None, unit: str = "", scale: float = 1.0, digits: int = 2) -> str:
    if n is None:
        return "–"
    return f"{n / scale:.{digits}f}{unit}"


def first_latency(latency: list[dict[str, Any]]) -> dict[str, Any] | None:
    return latency[0] if latency else None


def latency_ms(entry: dict[str, Any]) -> float:
    return float(entry.get("latency_ms", entry.get("mean_ms")))


def markdown(report: ProfileReport) -> str:
    dev = report.device or {}
    lines = ["# Model profile", "", f"Created {report.created}; device: **{dev.get('display_name', dev.get('name'))}**; "
             f"precision {report.config.get('precision') or 'each model’s own'}.", "",
             "MACs = multiply-accumulates of conv/linear/matmul layers; FLOPs = 2 × MACs (papers and torchvision "
             "often print MACs as \"FLOPs\").", "",
             "| model | kind | precision | input | params (M) | params deploy (M) | MACs (G) | FLOPs (G) | peak act. (MB) | file (MB) "
             "| accuracy | batch | latency (ms) | p90 (ms) | images/s | how |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for t in report.models:
        a = t.analysis or {}
        base = (f"| {t.model} | {t.kind} | {t.precision} | {'x'.join(map(str, t.input_shape))} | {_fmt(a.get('params'), '', 1e6)} | "
                f"{_fmt(a.get('params_deploy'), '', 1e6)} | {_fmt(a.get('macs'), '', 1e9, 3)} | {_fmt(a.get('flops'), '', 1e9, 3)} | "
                f"{_fmt(a.get('peak_activation_bytes'), '', 2**20)} | {_fmt(t.file_bytes, '', 2**20)} | "
                f"{_fmt(t.accuracy, '', 1, 4)} |")
        if not t.latency:
            lines.append(base + " – | – | – | – | – |")
        for e in t.latency:
            how = (f"{e.get('label', 'ESTIMATE')} (per-kernel model; 80 % band {e.get('low_ms', 0):.3g}–{e.get('high_ms', 0):.3g} ms)"
                   if e.get("kind") == "estimate"
                   else f"measured, {e.get('runner', {}).get('backend', '?')} on {e.get('where', '?')}")
            p90 = e.get("p90_ms")
            lines.append(base + f" {e.get('batch')} | {latency_ms(e):.3f} | {_fmt(p90, '', 1, 3)} | "
                                f"{e.get('throughput_ips', 0):.1f} | {how} |")
    est = [e for t in report.models for e in t.latency if e.get("kind") == "estimate"]
    if est:
        lines += ["", "## Estimate assumptions", ""] + [f"- {a}" for a in est[0].get("assumptions", [])]
    meas = [e for t in report.models for e in t.latency if e.get("kind") == "measured"]
    if meas:
        r = meas[0].get("runner", {})
        lines += ["", "## Measurement", "",
                  f"- warm-up {meas[0].get('warmup')} runs, {meas[0].get('iters')} timed runs, each synchronised; "
                  f"host↔device copies {'included' if meas[0].get('h2d_included') else 'excluded'}",
                  f"- backend {r.get('backend')}, precision {r.get('precision')}, threads {r.get('threads')}, "
                  f"device {r.get('device_name', r.get('device'))}"]
    for t in report.models:
        if t.power:
            p = t.power
            lines += ["", f"## Power ({t.model})", "",
                      f"- mean module power {p['mean_total_mw']:.0f} mW ({p['total_from']}), "
                      f"energy per image {_fmt(p.get('energy_per_inference_mj'), ' mJ')}, GPU load "
                      f"{_fmt(p.get('mean_gpu_load_pct'), ' %', 1, 0)}, GPU clock {p.get('max_gpu_mhz')} MHz"]
        for n in t.notes:
            lines.append(f"- note ({t.model}): {n}")
    return "\n".join(lines) + "\n"


def point_label(model: str) -> str:
    """A short name for a profiled file or run: ``run/student``, ``export/model_int8.onnx``."""
    parts = list(Path(model).parts)
    if len(parts) >= 2 and parts[-2] == "checkpoints":
        parts = parts[:-2]
    return "/".join(parts[-2:]) if parts else model


def plot_accuracy_latency(report: ProfileReport, path: str | Path) -> Path | None:
    """Accuracy (%) vs latency (batch of the first entry), one labelled point per run/file; estimates are
    hollow with their error band; None when no model has both."""
    from compress.metrics.plotting import new_figure, save_figure

    pts = [(t, first_latency(t.latency)) for t in report.models if t.accuracy is not None and t.latency]
    if not pts:
        return None
    fig = new_figure(6.5, 4.4)
    ax = fig.subplots()
    for t, e in pts:
        estimate = e.get("kind") == "estimate"
        x, y = latency_ms(e), 100 * t.accuracy
        if estimate and e.get("low_ms") is not None:
            ax.errorbar([x], [y], xerr=[[x - e["low_ms"]], [e["high_ms"] - x]], fmt="none", ecolor="C0", alpha=0.4,
                        capsize=3)
        ax.scatter([x], [y], s=60, facecolors="none" if estimate else "C0", edgecolors="C0")
        ax.annotate(f"{point_label(t.model)} ({t.precision})", (x, y), textcoords="offset points", xytext=(5, 4),
                    fontsize=7)
    kinds = {e.get("kind") for _, e in pts}
    ax.set_xlabel("latency per batch (ms)" + (" — hollow = ESTIMATE (80 % band)" if "estimate" in kinds else
                                                " — measured"))
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"accuracy vs latency on {(report.device or {}).get('name', '?')}")
    ax.grid(alpha=0.3)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path)


def write_report(report: ProfileReport, out_dir: str | Path) -> dict[str, Path]:
    """``profile.json``, ``profile.md`` and (when possible) ``accuracy_vs_latency.png`` in ``out_dir``."""
    out = Path(out_dir)
    files = {"json": write_json_atomic(out / "profile.json", to_jsonable(report)),
             "markdown": write_text_atomic(out / "profile.md", markdown(report))}
    png = plot_accuracy_latency(report, out / "accuracy_vs_latency.png")
    if png:
        files["png"] = png
    return files
