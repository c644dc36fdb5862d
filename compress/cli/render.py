"""Rich tables for job results, and running a job under a progress bar."""
from __future__ import annotations

from typing import Any, Callable

from rich.table import Table

from rich.markup import escape
from compress.cli.common import console, err_console, print_json, show_table


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.2f}"


def run_with_progress(job: Callable[..., Any], cfg: Any, quiet: bool = False, **kwargs: Any) -> Any:
    """``job(cfg, progress=…)`` with a rich progress bar (none with ``quiet``, e.g. under ``--json``)."""
    from compress.cli.progress import RichProgress
    from compress.parallel import is_main

    with RichProgress(enabled=not quiet and is_main()) as progress:
        return job(cfg, progress=progress, **kwargs)


def render_search(search: dict) -> None:
    """The candidates a device search considered: estimates (FP16, INT8, band), budget met, proxy score."""
    from compress.jobs.student_search import SEARCH_COLUMNS, search_table

    title, rows = search_table(search)
    table = Table(title=title, title_justify="left")
    for col in SEARCH_COLUMNS:
        table.add_column(col, justify="left" if col in ("candidate", "meets", "") else "right")
    for r in rows:
        table.add_row(*r)
    show_table(table)


def render_job(result, title: str, as_json: bool = False) -> None:
    from compress.parallel import is_main

    if not is_main():
        return
    if as_json:
        print_json(result.to_dict())
        return
    table = Table(title=title, title_justify="left")
    for col, just in (("role", "left"), ("model", "left"), ("method", "left"), ("params (M)", "right"),
                      ("test OA %", "right"), ("kappa", "right"), ("macro-F1 %", "right"), ("best ep.", "right"),
                      ("time (s)", "right")):
        table.add_column(col, justify=just)
    for r in result.rows:
        table.add_row(r.role, r.architecture, r.method, f"{r.params_m:.3f}", _pct(r.test_oa),
                      "—" if r.test_kappa is None else f"{r.test_kappa:.4f}", _pct(r.test_macro_f1),
                      f"{r.best_epoch}/{r.epochs}", f"{r.seconds:.1f}")
    show_table(table)
    if getattr(result, "search", None):
        render_search(result.search)
    if getattr(result, "chosen", None):
        console.print(result.chosen, soft_wrap=True, markup=False)
    for r in result.rows:
        if getattr(r, "init", ""):
            console.print(f"{r.role} {r.init}", soft_wrap=True, markup=False)
    d = result.data
    console.print(f"data: {d['source']} — {d['classes']} classes, {d['bands']} band(s) at {d['image_size']} px; "
                  f"train {d['train']} / test {d['test']} images" +
                  (f"; {d['bad_files']} unreadable file(s) skipped (see bad_files.txt)" if d.get("bad_files") else ""))
    console.print(f"run folder: [bold]{escape(str(result.run_dir))}[/bold]", markup=True)
    if getattr(result, "note", None):
        err_console.print(f"[yellow]note:[/yellow] {escape(result.note)}", soft_wrap=True, markup=True)
