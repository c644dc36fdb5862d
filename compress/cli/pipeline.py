"""``compress pipeline RECIPE.yaml``: data → teacher → students → exports → profiles → report, resumably."""
from __future__ import annotations

from typing import List, Optional

import typer

from rich.markup import escape

from compress.cli.common import console, fail, print_json, show_table
from compress.cli.options import Flag, Given, Group, arg, command, opt

OPTIONS = Group("pipeline", (
    arg("recipe", "The recipe (YAML); none = the example on the embedded digits (runs/quickstart.yaml, written "
        "the first time); `compress pipeline --init R.yaml` writes it elsewhere.",
        type=Optional[str], default=None),
    opt("init", "--init", type=Flag, default=False, show_default=False,
        help="Write a commented example recipe to RECIPE (runs on the embedded digits in about two minutes) and exit."),
    opt("redo", "--redo", type=Optional[List[str]], show_default=False,
        help="Redo this step even if it finished (repeatable); the steps that read it follow."),
    opt("dry_run", "--dry-run", type=Flag, default=False, show_default=False,
        help="Check the recipe and list the steps (done / pending) without running any."),
    opt("out", "--out", "-o", show_default="the recipe's out:", help="Run folder."),
    opt("json", "--json", type=bool, default=False, show_default=False, help="Print JSON."),
))


def register(app: typer.Typer) -> None:
    @command(app, "pipeline", OPTIONS)
    def pipeline(given: Given) -> None:
        """One command from data to a deployment report: teacher, students (distilled, pruned, QAD), exports
        (FP32/FP16/INT8, trtexec script), profiles (measured here, estimated per device) and report.md/.html."""
        from rich.table import Table

        from compress.cli.render import run_with_progress
        from compress.errors import UserInputError
        from compress.jobs.pipeline import run_pipeline
        from compress.jobs.recipe import quickstart_recipe, write_init

        if given["init"] and not given["recipe"]:
            raise UserInputError("give the file to write: compress pipeline --init RECIPE.yaml.")
        recipe = given["recipe"]
        if not recipe:
            path, written = quickstart_recipe()
            recipe = str(path)
            if not given["json"]:
                console.print(f"No recipe given: the example on the embedded digits, {path} ("
                              + ("written now" if written else "as it is on disk, edits included")
                              + f"); edit it and run `compress pipeline {path}`, or give your own recipe.")
        if given["init"]:
            path = write_init(recipe, given["out"])
            console.print(f"written: {path} — run it with: compress pipeline {path}")
            return

        def job(recipe, progress=None):
            return run_pipeline(recipe, tuple(given["redo"] or ()), given["dry_run"], progress, given["out"])

        result = run_with_progress(job, recipe, quiet=given["json"] or given["dry_run"])
        if given["json"]:
            print_json(result.to_dict())
            if result.failed:
                fail("; ".join(result.failed))
            return
        t = Table(title=f"pipeline {result.run_dir}")
        for col, just in (("step", "left"), ("status", "left"), ("seconds", "right")):
            t.add_column(col, justify=just)
        for s in result.steps:
            t.add_row(s.name, s.status, f"{s.seconds:.1f}" if s.status == "ran" else "–")
        show_table(t)
        show_table(summary_table(result.rows, result.targets))
        for line in value_lines(result.rows):
            console.print(line, markup=False)
        for pick in result.recommendations:
            console.print(f"ship on {pick['device']}: " + (f"{pick['model']} {pick['precision']}" if pick["model"] else "–")
                          + f" ({pick['why']})", markup=False)
        for k, v in result.report.items():
            if k in ("markdown", "html"):
                console.print(f"{k}: [bold]{escape(str(v))}[/bold]", markup=True)
        if result.failed:  # the run finished, but a file it made must not be shipped as it is
            fail("; ".join(result.failed))


def summary_table(rows: list[dict], targets: list[str]):
    """The report's rows in the terminal: accuracy, size, latency here and the first device's estimate."""
    from rich.table import Table

    from compress.jobs import formats as fmt

    est = targets[0] if targets else None
    t = Table(title="models (test split; latency batch 1" + (f", {est} ESTIMATED" if est else "") + ")")
    heads = ["model", "precision", "OA %", "params (M)", "MACs (M)", "file (MB)", "host ms"]
    heads += [f"{est} ms"] if est else []
    for i, h in enumerate(heads):
        t.add_column(h, justify="left" if i < 2 else "right")

    for r in rows:
        cells = [r["model"], r["precision"], fmt.pct(r["oa"]), fmt.num(r.get("params_m")), fmt.num(r.get("macs"), 1e6, 2),
                 fmt.num(r.get("file_bytes"), 2**20, 2), fmt.ms(r.get("host_ms"))]
        if est:
            cells.append(fmt.ms((r["estimates"].get(est) or {}).get("ms")))
        t.add_row(*cells)
    return t


def value_lines(rows: list[dict]) -> list[str]:
    """One line per student trained beside its no-teacher baseline: what the teacher was worth."""
    teacher = next((r for r in rows if r["model"] == "teacher"), None)
    lines = []
    for base in (r for r in rows if r["model"].startswith("baseline:")):
        name = base["model"].split(":", 1)[1]
        student = next((r for r in rows if r["model"] == name and r.get("file")), None)
        if student is None or student["oa"] is None or base["oa"] is None:
            continue
        gain = 100 * (student["oa"] - base["oa"])
        line = (f"{name}: {100 * student['oa']:.2f} % ({student['precision']}) against {100 * base['oa']:.2f} % "
                f"for the same network trained without the teacher ({gain:+.2f} pt)")
        if teacher and teacher.get("oa") is not None and teacher.get("params_m") and base.get("params_m"):
            line += (f"; the teacher: {100 * teacher['oa']:.2f} % with {teacher['params_m'] / base['params_m']:.1f}× "
                     "the parameters")
        lines.append(line + ".")
    return lines
