"""The ``compress`` command line: one module per command, each with ``register(app)``."""
from __future__ import annotations

import importlib

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
    app()
