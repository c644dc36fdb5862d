"""Tables never cut a value to '…': drawn when they fit, one block per row on a narrow terminal, plain when piped."""
import io

from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.testing import CliRunner

from compress.cli import app
from compress.cli.common import show_table


def _table():
    t = Table(title="demo")
    t.add_column("target")
    t.add_column("latency ms", justify="right")
    t.add_row("jetson-orin-nano-super-devkit", Text("1.234", style="yellow"))  # styled cells are Text
    t.add_row("jetson-agx-orin-industrial", "0.5")
    t.add_row("[draft] beach", "[/b]")  # a str cell is text, never markup
    return t


def _render(width, terminal):
    buf = io.StringIO()
    # as the CLI's consoles are (compress.cli.common): user text is never read as markup
    show_table(_table(), Console(file=buf, width=width, force_terminal=terminal, color_system=None, markup=False))
    return buf.getvalue()


def test_wide_terminal_draws_the_table():
    text = _render(120, True)
    assert "┃" in text and "jetson-orin-nano-super-devkit" in text and "…" not in text


def test_narrow_terminal_gives_one_block_per_row():
    text = _render(20, True)
    assert "  target: jetson-orin-nano-super-devkit" in text and "  latency ms: 1.234" in text and "…" not in text
    assert "  target: [draft] beach" in text


def test_piped_output_is_a_plain_table():
    lines = _render(40, False).splitlines()
    assert lines[0] == "demo" and lines[1].split() == ["target", "latency", "ms"]
    assert lines[2].split() == ["jetson-orin-nano-super-devkit", "1.234"]  # style dropped, nothing cut
    assert lines[4].split() == ["[draft]", "beach", "[/b]"]


def test_list_devices_keeps_full_names_when_piped():
    out = CliRunner().invoke(app, ["profile", "--list-devices"]).stdout
    assert "jetson-orin-nano-super-devkit" in out and "jetson-agx-orin-industrial" in out and "…" not in out
