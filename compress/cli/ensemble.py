"""``compress ensemble search``: grid-search the weights of an ensemble teacher (ERKT-Net §4.3)."""
from __future__ import annotations

from typing import List, Optional

import typer

from compress.cli.common import cli_errors, console, print_json, show_table

ensemble_app = typer.Typer(help="Weighted ensemble teachers (ERKT-Net).", no_args_is_help=True)


@ensemble_app.command("search")
def search(
    checkpoints: List[str] = typer.Argument(..., help="Member checkpoints (or run folders), in weight order."),
    data: Optional[str] = typer.Option(None, "--data", help="Data folder of the members' run (default: the one "
                                       "recorded in the first member's manifest)."),
    vary: int = typer.Option(0, "--vary", help="Index of the member whose weight is searched (others share the rest)."),
    grid: Optional[List[float]] = typer.Option(None, "--grid", help="Candidate weights (default 0.1 … 0.9)."),
    split: str = typer.Option("val", "--split", help="val (model selection) or test."),
    combine: str = typer.Option("logits", "--combine", help="logits (weighted logits, ERKT-Net) or probs."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Input size (default: the first member's)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Score every candidate weighting of the members on a split and report each one's accuracy."""
    with cli_errors():
        from compress.jobs.ensemble_search import DEFAULT_GRID, search_ensemble_weights

        result = search_ensemble_weights(checkpoints, data, vary=vary, grid=tuple(grid) if grid else DEFAULT_GRID,
                                         split=split, combine=combine, image_size=image_size, device=device)
        if as_json:
            print_json(result.to_dict())
            return
        from rich.table import Table

        members = Table(title="Members")
        for col in ("#", "checkpoint", "architecture", f"{split} OA"):
            members.add_column(col)
        for i, (c, a, oa) in enumerate(zip(result.checkpoints, result.architectures, result.member_oa)):
            members.add_row(str(i), c, a, f"{oa * 100:.2f}")
        show_table(members)
        table = Table(title=f"Candidates (member {vary} varied; {result.images} {split} images, {combine})")
        table.add_column("weights")
        table.add_column(f"{split} OA", justify="right")
        for cand in result.candidates:
            mark = " *" if cand is result.best else ""
            table.add_row(" ".join(f"{w:.3f}" for w in cand.weights), f"{cand.oa * 100:.2f}{mark}")
        show_table(table)
        console.print("best weights: " + " ".join(f"{w:.3f}" for w in result.best.weights)
                      + "  (use: " + " ".join(f"--teacher-weight {w:g}" for w in result.best.weights) + ")")


def register(app: typer.Typer) -> None:
    app.add_typer(ensemble_app, name="ensemble")
