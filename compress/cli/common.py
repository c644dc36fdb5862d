"""Shared CLI plumbing: one red line and exit 1 for our errors, JSON output, the rich console."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import typer
from rich.console import Console

from compress.errors import CompressError
from compress.io import to_jsonable

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn CompressError (and Ctrl-C) into one red line on stderr and a non-zero exit, no traceback."""
    try:
        yield
    except CompressError as exc:
        err_console.print(f"[red]error:[/red] {exc}", markup=True, soft_wrap=True)
        raise typer.Exit(code=1) from None
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/red]")
        raise typer.Exit(code=130) from None


def print_json(obj: Any) -> None:
    """Machine-readable output on stdout (``--json``)."""
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2) + "\n")
    sys.stdout.flush()


def progress_columns():
    """The columns used by every progress bar in the CLI."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
