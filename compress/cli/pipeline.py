"""``compress pipeline RECIPE.yaml``: data → teacher → students → exports → profiles → report, resumably."""
from __future__ import annotations

from typing import List, Optional

import typer

from rich.markup import escape

from compress.cli.common import console, fail, print_json, show_table
from compress.cli.options import Flag, Given, Group, arg, command, opt

OPTIONS = Group("pipeline", (
    arg("recipe", "The recipe (YAML); `compress pipeline --init R.yaml` writes a commented example.",
        type=Optional[str], default=None),
    opt("init", "--init", type=Flag, default=False, show_default=False,
        help="Write a commented example recipe to RECIPE (runs on the embedded digits in a few minutes) and exit."),
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
        from compress.jobs.recipe import write_init

        if not given["recipe"]:
            raise UserInputError("give the recipe file: compress pipeline RECIPE.yaml (or --init RECIPE.yaml).")
        if given["init"]:
            path = write_init(given["recipe"], given["out"])
            console.print(f"written: {path} — run it with: compress pipeline {path}")
            return

        def job(recipe, progress=None):
            return run_pipeline(recipe, tuple(given["redo"] or ()), given["dry_run"], progress, given["out"])

        result = run_with_progress(job, given["recipe"], quiet=given["json"] or given["dry_run"])
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
        for k, v in result.report.items():
            if k in ("markdown", "html"):
                console.print(f"{k}: [bold]{escape(str(v))}[/bold]", markup=True)
        if result.failed:  # the run finished, but a file it made must not be shipped as it is
            fail("; ".join(result.failed))
