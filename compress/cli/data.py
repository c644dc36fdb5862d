"""``compress data``: data-set utilities (``simulate-pan-ms``)."""
from __future__ import annotations

from pathlib import Path

import typer

from compress.cli.common import cli_errors, console, print_json

data_app = typer.Typer(help="Data-set utilities.", no_args_is_help=True)


@data_app.command("simulate-pan-ms")
def simulate_pan_ms_cmd(
    src: Path = typer.Argument(..., help="RGB class-per-folder data set."),
    dst: Path = typer.Argument(..., help="New folder; gets pan/<class>/… and ms/<class>/… TIFFs."),
    factor: int = typer.Option(4, help="PAN:MS resolution ratio (Wald protocol)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """SIMULATE a panchromatic (1 band, full res) / multispectral (R,G,B,NIR-proxy, 1/factor res) pair set."""
    from compress.data.simulate import simulate_pan_ms

    with cli_errors():
        if json_out:
            result = simulate_pan_ms(src, dst, factor=factor)
            print_json(result)
            return
        from rich.progress import Progress

        from compress.cli.common import progress_columns

        with Progress(*progress_columns(), console=console, transient=True) as bar:
            task = bar.add_task("simulating", total=None, info="")
            result = simulate_pan_ms(src, dst, factor=factor,
                                     progress=lambda d, t: bar.update(task, completed=d, total=t))
        console.print(f"{result.images} pairs of {result.classes} classes → {dst}/pan {result.pan_shape} and "
                      f"{dst}/ms {result.ms_shape} (a simulation: the 4th MS band is a NIR proxy)")
        if result.skipped:
            console.print(f"[yellow]{len(result.skipped)} unreadable image(s) skipped[/yellow]", markup=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
