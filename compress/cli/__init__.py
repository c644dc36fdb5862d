"""The ``compress`` command line: one module per command, each with ``register(app)``."""
from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="compress",
    help="Distil compact students, export them to ONNX/TensorRT and profile them for edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module defines register(app); the order is the order in --help.
COMMAND_MODULES = ["distill", "train", "evaluate", "export", "quantize", "prune", "profile", "ensemble", "retrieval",
                   "data", "pipeline", "catalog"]


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"compress.cli.{name}").register(app)


_register_all()


def main() -> None:
    from compress.parallel import world_size

    if world_size() == 1:
        app()
        return
    try:  # a torchrun rank: the command's exit code, then an exit that skips interpreter finalization
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    from compress.engine.distributed import finish

    finish(code)
