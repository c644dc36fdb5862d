"""The pipeline's renderer: the report (``report.md``, ``report.html``), accuracy-vs-latency plots per device
with the Pareto front, and a model card (``README.md``) beside every exported model. It renders the rows of
:mod:`compress.jobs.pipeline_rows`; numbers are formatted by :mod:`compress.jobs.formats` only."""
from __future__ import annotations

import datetime as _dt
import html
from pathlib import Path
from typing import Any

from compress.io import write_text_atomic
from compress.jobs.formats import estimate, ms, num, pct
from compress.jobs.pipeline_outputs import ExportOutputs, PipelineView, StudentOutputs
from compress.jobs.pipeline_rows import collect_rows, recommendations, teacher_reference, versus
from compress.jobs.student_search import SEARCH_COLUMNS, search_table


def int8_fix_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown: what the INT8 budget did to each INT8 file — CLE, AdaRound, bias correction, layers in float."""
    names = {"cle": "CLE", "adaround": "AdaRound", "bias_correction": "bias correction"}
    out = []
    for r in rows:
        fixes = r.get("int8_fixes")
        if fixes is None:
            continue
        said = [f"{names[k]}: {fixes.get(k, 'off')}" for k in names]
        floats = fixes.get("float_nodes", "")
        said.append(f"{len(floats.split(','))} layer(s) kept in float" if floats else "no layer kept in float")
        out.append(f"- {r['model']} {r['precision']}: " + "; ".join(said))
    return ["", "## INT8 fixes (tried before any layer is kept in float; kept only when judged better)", "", *out] \
        if out else []


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both latency (lower) and accuracy (higher)."""
    front = []
    for i, (x, y) in enumerate(points):
        if not any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def point_label(r: dict[str, Any]) -> str:
    """``kd int8-trt``: the model and its precision with the INT8 flavour (two INT8 files are two points)."""
    precision = r["precision"].split(" — ")[0].replace(" (checkpoint)", " ckpt")
    return f"{r['model']} {precision.replace(' (', '-').rstrip(')')}"


def label_offsets(xy: list[tuple[float, float]], near: float = 0.04, wide: float = 0.25, step: float = 9.0,
                  span: tuple[float, float] | None = None) -> list[float]:
    """Vertical label offsets (points) so that labels of points closer than ``wide`` of the x span (a label is
    wide) and ``near`` of the y span stack instead of printing over each other; ``span`` (x, y) is the axes'
    width and height in data units (default: the points' own ranges)."""
    if not xy:
        return []
    xs, ys = [x for x, _ in xy], [y for _, y in xy]
    wx, wy = span or ((max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0)
    out: list[float] = []
    for i, (x, y) in enumerate(xy):
        crowd = sum(abs(x - x2) < wide * wx and abs(y - y2) < near * wy for x2, y2 in xy[:i])
        out.append(3.0 + step * crowd)
    return out


def _plot(rows: list[dict[str, Any]], latency_of, title: str, xlabel: str, path: Path, band_of=None) -> Path | None:
    """Accuracy against latency, one point per row; ``band_of(row)`` → (low, high) ms draws an estimate's
    80 % band as a horizontal error bar."""
    from compress.metrics.plotting import new_figure, save_figure

    on_device = band_of is not None  # a Jetson runs TensorRT: the ONNX Runtime-flavour INT8 file is not a point
    pts = [(r, latency_of(r)) for r in rows if r.get("oa") is not None and latency_of(r) is not None
           and not (on_device and r.get("flavour") == "cpu")]
    if not pts:
        return None
    xy = [(lat, 100 * r["oa"]) for r, lat in pts]
    front = pareto(xy)
    fig = new_figure(7, 4.6)
    ax = fig.subplots()
    if band_of is not None:
        bands = [band_of(r) or (x, x) for (r, _), (x, _) in zip(pts, xy)]
        ax.errorbar([x for x, _ in xy], [y for _, y in xy], fmt="none", ecolor="0.6", elinewidth=0.8, capsize=2,
                    xerr=[[x - lo for (x, _), (lo, _) in zip(xy, bands)], [hi - x for (x, _), (_, hi) in zip(xy, bands)]],
                    label="ESTIMATE, 80 % band")
    is_teacher = [r["model"] == "teacher" for r, _ in pts]
    ax.scatter([x for (x, _), t in zip(xy, is_teacher) if not t], [y for (_, y), t in zip(xy, is_teacher) if not t],
               s=40, color="C0", label="students, baselines")
    if any(is_teacher):  # the reference: a distinct marker
        ax.scatter([x for (x, _), t in zip(xy, is_teacher) if t], [y for (_, y), t in zip(xy, is_teacher) if t],
                   s=110, marker="*", color="C2", label="teacher (reference)")
    ax.plot([xy[i][0] for i in front], [xy[i][1] for i in front], color="C3", lw=1.2, marker="o", mfc="none", ms=11,
            label="Pareto front")
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    for (r, _), (x, y), dy in zip(pts, xy, label_offsets(xy, span=(x1 - x0, y1 - y0))):
        ax.annotate(point_label(r), (x, y), textcoords="offset points", xytext=(5, dy), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test OA (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _links(r: dict[str, Any], root: Path) -> list[tuple[str, str]]:
    links = []
    run = Path(r.get("run_dir") or r["dir"])
    conf = sorted(run.rglob("confusion.png"),  # the trained student's, not a before-recovery evaluation
                  key=lambda q: ("student" not in q.relative_to(run).parts, len(q.parts))) if run.exists() else []
    if conf:
        links.append(("confusion", str(conf[0].relative_to(root))))
    if r.get("file"):
        d = Path(r["file"]).parent
        for label, name in (("parity", "parity.json"), ("model card", "README.md")):
            if (d / name).exists() or name == "README.md":
                links.append((label, str((d / name).relative_to(root))))
    return links


def model_card(p: PipelineView, name: str, rows: list[dict[str, Any]], targets: list[str]) -> str:
    from compress.checkpoint import read_manifest

    export = p.outputs(f"export:{name}") if f"export:{name}" in p.records else p.outputs(f"student:{name}")
    assert isinstance(export, (ExportOutputs, StudentOutputs))
    engine = export.engine_status if isinstance(export, ExportOutputs) else None
    man = read_manifest(export.checkpoint)
    mine = [r for r in rows if r["model"] == name]
    cfg = man.config or {}
    train = cfg.get("train", {})
    lines = [f"# {name}: {man.architecture} ({man.method})", "",
             f"Made by `compress pipeline {p.recipe_path}` ({_dt.date.today().isoformat()}); run folder `{p.run}`.", "",
             "## Data", "",
             f"- source: {(cfg.get('data') or {}).get('data') or 'embedded digits'}; split hash {man.split_hash}",
             f"- {len(man.class_names)} classes: {', '.join(man.class_names)}",
             f"- {man.in_chans} band(s) at {man.image_size}×{man.image_size} px", "",
             "## Preprocessing", "",
             f"- input `[batch, {man.in_chans}, {man.image_size}, {man.image_size}]` float32 (NCHW): pixel values scaled "
             "to [0, 1], resized, then normalised with", f"  mean {list(man.mean)} and std {list(man.std)}",
             "- the output is one logit per class, in the order above", "",
             "## Files and accuracy (test split)", "",
             "| file | precision | OA % | kappa | size MB | host CPU ms | " + " | ".join(f"{t} ms (ESTIMATE)" for t in targets)
             + " |", "| --- | --- | ---: | ---: | ---: | ---: |" + " ---: |" * len(targets)]
    for r in mine:
        est = [estimate(r["estimates"].get(t)) for t in targets]
        lines.append(f"| {Path(r['file']).name} | {r['precision']} | {pct(r['oa'])} | {num(r['kappa'], 1, 4)} | "
                     f"{num(r.get('file_bytes'), 2**20, 2)} | {ms(r.get('host_ms'))} | " + " | ".join(est) + " |")
    lines += ["", "## How it was made", "",
              f"- method `{man.method}`, role {man.role}, {man.epoch} epoch(s); lr {train.get('lr')}, batch "
              f"{train.get('batch_size')}, optimizer {train.get('optimizer')}",
              f"- teacher: {', '.join(cfg.get('teacher') or []) or 'none'}",
              f"- initial weights: {(man.init or {}).get('file') or 'random'}",
              f"- TensorRT: {engine} (build_engine.sh beside the files builds it on the target)" if engine
              else "- TensorRT: not requested", "",
              "## Limits", "",
              "- Jetson latencies are ESTIMATES (per-kernel model, 80 % band in brackets), never measurements; the host "
              "latency was measured here with ONNX Runtime on the CPU.",
              "- accuracy is on the held-out test split of the data above; other data will differ."]
    return "\n".join(lines) + "\n"


def _searches(p: PipelineView) -> list[tuple[str, list[list[str]], str]]:
    """The candidates table of every student searched for a device, titled with the student's name, and the
    line that says what was chosen and why."""
    out = []
    for s in p.steps:
        found = p.outputs(s.name) if s.kind == "student" else None
        if isinstance(found, StudentOutputs) and found.search:
            title, rows = search_table(found.search)
            out.append((f"{s.name.split(':', 1)[1]}: {title}", rows, found.chosen or ""))
    return out


def write_pipeline_report(p: PipelineView) -> dict[str, Path]:
    rows, targets = collect_rows(p)
    root = p.run
    from compress.hardware import cpu_info

    host = cpu_info().describe()
    plots = {}
    for t in targets:
        slug = t.replace("@", "_").replace("/", "_")
        band = lambda r, t=t: (lambda e: (e["low_ms"], e["high_ms"]) if e else None)(r["estimates"].get(t))  # noqa: E731
        png = _plot(rows, lambda r, t=t: (r["estimates"].get(t) or {}).get("ms"), f"accuracy vs latency: {t} (ESTIMATE)",
                    "estimated GPU latency, batch 1 (ms)", root / f"pareto_{slug}.png", band)
        if png:
            plots[t] = png
    png = _plot(rows, lambda r: r.get("host_ms"), f"accuracy vs latency: {host.split(' (')[0]} (measured)",
                "measured latency, ONNX Runtime CPU, batch 1 (ms)", root / "pareto_host.png")
    if png:
        plots["host"] = png
    cards = {}
    for name in sorted({r["model"] for r in rows if r.get("file")}):
        d = Path(next(r["file"] for r in rows if r["model"] == name and r.get("file"))).parent
        cards[name] = write_text_atomic(d / "README.md", model_card(p, name, rows, targets))
    head = ["model", "method", "precision", "OA %", "Δ OA vs teacher (pt)", "kappa", "params (M)", "MACs (G)",
            "file (MB)", "size vs teacher", "host ms"] + [f"{t} ms" for t in targets] + ["links"]
    ref = teacher_reference(rows)
    table = []
    for r in rows:
        v = versus(r, ref, targets)
        est = [estimate(r["estimates"][t]) + v.get(t, "") if t in r["estimates"] else "–" for t in targets]
        table.append(([r["model"], r["method"], r["precision"], pct(r["oa"]), v["oa"], num(r["kappa"], 1, 4),
                       num(r.get("params_m"), 1, 3), num(r.get("macs"), 1e9, 4), num(r.get("file_bytes"), 2**20, 2),
                       v["size"], ms(r.get("host_ms")) + v.get("host", "")] + est, _links(r, root)))
    intro = (f"Recipe `{p.recipe_path}`; {len(rows)} rows. Accuracy: test split. Host latency measured on {host} "
             "(ONNX Runtime, batch 1). Device columns are ESTIMATES of TensorRT GPU time (80 % band in brackets). "
             + (f"Reference: the teacher's {ref['precision']} ({pct(ref['oa'])} %): Δ OA in points, size as a share "
                "of its file (or parameters), and ×N = N times faster than it in the same column." if ref else
                "No teacher row to compare with (export.teacher: true adds it)."))
    failed = [r for r in rows if r.get("parity_failed")]
    if failed:
        intro += (f" {len(failed)} file(s) FAILED their parity check against the PyTorch model (marked in the "
                  "precision column; see parity.json beside them): do not ship them as they are.")
    picks = [x.line() for x in recommendations(p, rows, targets)]
    md = ["# Pipeline report", "", "## What to ship", "", *[f"- {x}" for x in picks], "", intro, "",
          "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    md += ["| " + " | ".join(cells + [", ".join(f"[{a}]({b})" for a, b in links) or "–"]) + " |" for cells, links in table]
    fixes = int8_fix_lines(rows)
    md += fixes
    md += [""] + [f"![{k}]({v.name})" for k, v in plots.items()]
    searches = _searches(p)
    for title, rows, why in searches:
        md += ["", f"## {title}", "", "| " + " | ".join(SEARCH_COLUMNS) + " |", "|" + " --- |" * len(SEARCH_COLUMNS)]
        md += ["| " + " | ".join(r) + " |" for r in rows] + ["", why]
    paths = {"markdown": write_text_atomic(root / "report.md", "\n".join(md) + "\n")}
    esc = html.escape
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "<td>" + ", ".join(
        f'<a href="{esc(b)}">{esc(a)}</a>' for a, b in links) + "</td></tr>" for cells, links in table)
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>Pipeline report</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:3px 6px;font-size:13px}</style></head><body><h1>Pipeline report</h1>"
            "<h2>What to ship</h2><ul>" + "".join(f"<li>{esc(x)}</li>" for x in picks) + "</ul>"
            f"<p>{esc(intro)}</p><table><tr>{''.join(f'<th>{esc(h)}</th>' for h in head)}</tr>{body}</table>"
            + (f"<h2>{esc(fixes[1].lstrip('# '))}</h2><ul>" + "".join(f"<li>{esc(x[2:])}</li>" for x in fixes[3:])
               + "</ul>" if fixes else "")
            + "".join(f"<h3>{esc(k)}</h3><img src='{esc(v.name)}' width='640'>" for k, v in plots.items())
            + "".join(f"<h3>{esc(title)}</h3><table><tr>{''.join(f'<th>{esc(h)}</th>' for h in SEARCH_COLUMNS)}</tr>"
                      + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
                      + f"</table><p>{esc(why)}</p>" for title, rows, why in searches)
            + "</body></html>")
    paths["html"] = write_text_atomic(root / "report.html", page)
    paths.update({f"plot {k}": v for k, v in plots.items()})
    paths.update({f"card {k}": v for k, v in cards.items()})
    return paths
