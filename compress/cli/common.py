"""Shared CLI plumbing: one red line and exit 1 for our errors, JSON output, the rich console."""
from __future__ import annotations

import errno
import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import typer
from rich.console import Console
from rich.markup import escape

from compress.errors import CompressError
from compress.io import to_jsonable

console = Console(stderr=False, highlight=False, markup=False)  # user paths and class names are never markup
err_console = Console(stderr=True, highlight=False, markup=False)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn CompressError (and Ctrl-C) into one red line on stderr and a non-zero exit, no traceback."""
    try:
        yield
    except CompressError as exc:
        fail(str(exc))
    except MemoryError:
        fail("ran out of memory; lower --batch-size or --image-size (or use a machine with more memory).")
    except RuntimeError as exc:  # torch.OutOfMemoryError (CUDA) and the CPU allocator's "not enough memory"
        text = str(exc)
        if "out of memory" not in text.lower() and "not enough memory" not in text.lower():
            raise
        fail(f"ran out of memory ({text.strip().splitlines()[0][:120]}); lower --batch-size or --image-size.")
    except OSError as exc:
        fail(os_error_line(exc))
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/red]", markup=True)
        raise typer.Exit(code=130) from None


OS_ADVICE = {
    errno.ENOSPC: "no space left on the device writing {f}; free some space (finished files are kept; a training "
                  "run continues with --resume)",
    errno.EACCES: "permission denied on {f}; choose a folder you can write (--out) or fix its permissions",
    errno.EPERM: "permission denied on {f}; choose a folder you can write (--out) or fix its permissions",
    errno.EROFS: "{f} is on a read-only file system; choose a writable --out",
    errno.ENAMETOOLONG: "a file name is too long: {f}; use a shorter --out or name (at most 255 bytes a name)",
    errno.ENOTDIR: "{f} is a file where a folder is needed; choose another path",
    errno.EISDIR: "{f} is a folder where a file is needed; choose another path",
    errno.EEXIST: "{f} already exists; choose another path",
}


def os_error_line(exc: OSError) -> str:
    """One line for an operating-system error: what failed, on which file, what to do."""
    name = exc.filename if exc.filename is not None else getattr(exc, "filename2", None)
    f = f"'{str(name)[:300]}'" if name is not None else "a file"
    advice = OS_ADVICE.get(exc.errno or -1)
    return advice.format(f=f) if advice else f"{exc.strerror or type(exc).__name__} ({f})."


def fail(message: str, code: int = 1) -> None:
    """One red line on stderr (the message is never read as rich markup), then exit ``code``."""
    err_console.print(f"[red]error:[/red] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code=code) from None


def print_json(obj: Any) -> None:
    """Machine-readable output on stdout (``--json``); under torchrun only rank 0 prints."""
    from compress.parallel import is_main

    if not is_main():
        return
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2) + "\n")
    sys.stdout.flush()


def progress_columns():
    """The columns used by every progress bar in the CLI."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return (
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )


def show_table(table: Any, out: Console | None = None) -> None:
    """Print a rich table that stays readable: nothing is ever cut to ``…``.

    On a terminal wide enough for every column's longest word the table is drawn (cells wrap); on a
    narrower terminal each row becomes a block of ``column: value`` lines; when the output is piped or
    redirected it is a plain text table with no width limit (one row per line, easy to grep).
    """
    from rich.text import Text

    out = out or console

    def plain(cell: Any) -> str:
        text = cell if isinstance(cell, Text) else Text(str(cell))  # a str cell is text, never markup
        return text.plain.replace("\n", " ")

    longest = [max((len(w) for v in [c.header, *c.cells] for w in plain(v).split()), default=1) for c in table.columns]
    needed = sum(longest) + 3 * len(longest) + 1  # cell padding and borders
    if out.is_terminal and needed <= out.width:
        for col, n in zip(table.columns, longest):  # wrap between words, never inside one, never "…"
            col.overflow, col.no_wrap, col.min_width = "fold", False, n
        out.print(table)
        return

    headers = [plain(c.header) for c in table.columns]
    rows = list(zip(*[[plain(v) for v in c.cells] for c in table.columns]))
    title = plain(table.title) if table.title else ""
    if out.is_terminal:  # narrow terminal: one block per row
        lines = [title] if title else []
        for row in rows:
            lines += [""] + [f"  {h}: {v}" for h, v in zip(headers, row) if v not in ("", "–", "—")]
    else:
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
        fmt = "  ".join(f"{{:{'>' if c.justify == 'right' else '<'}{w}}}" for c, w in zip(table.columns, widths))
        lines = ([title] if title else []) + [fmt.format(*headers).rstrip()] + [fmt.format(*r).rstrip() for r in rows]
    out.file.write("\n".join(lines) + "\n")
    out.file.flush()
