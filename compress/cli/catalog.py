"""``compress models``, ``compress methods [NAME]`` and ``compress predict MODEL PATH...``."""
from __future__ import annotations

from typing import List, Optional

import typer

from rich.markup import escape

from compress.cli.common import console, err_console, print_json, show_table
from compress.cli.options import Group, Given, Int, arg, command, opt

JSON = opt("json", "--json", type=bool, default=False, show_default=False, help="Print JSON.")
MODELS = Group("models", (
    arg("pattern", "Glob over the names, e.g. 'efficientnet*'.", type=Optional[str], default=None),
    opt("num_classes", "--num-classes", type=Int, default=1000, help="Classes of the head the sizes are counted with."),
    JSON,
))
METHODS = Group("methods", (arg("name", "A method: its hyper-parameters, defaults and presets.", type=Optional[str],
                                default=None), JSON))
PREDICT = Group("predict", (
    arg("model", "Checkpoint folder, a train/distill run folder or an exported .onnx classifier."),
    arg("paths", "Image files and/or folders (searched recursively).", type=List[str]),
    opt("top_k", "--top-k", type=Int, default=1, help="Classes listed per image."),
    opt("batch_size", "--batch-size", type=Int, default=64, help="Images per forward pass."),
    opt("device", "--device", default="cpu", help="cpu, cuda or auto (checkpoints; .onnx runs on CPU)."),
    opt("out", "--out", "-o", help="Also write the predictions to a .csv or .json file.", show_default=False),
    opt("max_pixels", "--max-pixels", type=Optional[int], default=None, show_default="178,956,970",
        help="Largest image (height × width) read; larger files are skipped before decoding."),
    JSON,
))


def register(app: typer.Typer) -> None:
    @command(app, "models", MODELS)
    def models(given: Given) -> None:
        """The model zoo: names with parameters and MACs at each model's default input size."""
        from rich.table import Table

        from compress.jobs.catalog import model_catalog

        rows = model_catalog(given["pattern"], given["num_classes"])
        if given["json"]:
            print_json({"models": [r.__dict__ for r in rows]})
            return
        t = Table(title=f"model zoo ({given['num_classes']} classes; timm and torchvision names also work)")
        for col, just in (("name", "left"), ("params (M)", "right"), ("GMACs", "right"), ("px", "right"),
                          ("note", "left")):
            t.add_column(col, justify=just)
        for r in rows:
            note = r.note or (f"alias of {r.alias_of}" if r.alias_of else "")
            t.add_row(r.name, "–" if r.params_m is None else f"{r.params_m:.3f}",
                      "–" if r.macs_g is None else f"{r.macs_g:.4f}", str(r.image_size or "–"), note)
        show_table(t)

    @command(app, "methods", METHODS)
    def methods(given: Given) -> None:
        """Distillation and training methods; with NAME, its hyper-parameters (set with -p KEY=VALUE)."""
        from rich.table import Table

        from compress.jobs.catalog import method_catalog, method_params

        if given["name"] is None:
            rows = method_catalog()
            if given["json"]:
                print_json({"methods": [r.__dict__ for r in rows]})
                return
            t = Table(title="methods (compress methods NAME shows one's hyper-parameters)")
            for col in ("name", "teacher", "presets", "what it is"):
                t.add_column(col)
            for r in rows:
                t.add_row(r.name, "yes" if r.teacher else "no", ", ".join(r.presets) or "–", r.summary)
            show_table(t)
            return
        info, params = method_params(given["name"])
        if given["json"]:
            print_json({"method": info.__dict__, "params": [p.__dict__ for p in params]})
            return
        console.print(f"[bold]{info.name}[/bold]: {escape(info.summary)}", soft_wrap=True, markup=True)
        t = Table(title=f"hyper-parameters (-p KEY=VALUE){'; presets: --config ' + ', '.join(info.presets) if info.presets else ''}")
        for col in ("name", "type", "default", *[f"preset {p}" for p in info.presets]):
            t.add_column(col)
        for p in params:
            t.add_row(p.name, p.type, repr(p.default), *[repr(p.presets[k]) if k in p.presets else "" for k in info.presets])
        show_table(t)

    @command(app, "predict", PREDICT)
    def predict(given: Given) -> None:
        """Class and confidence of each image, from a checkpoint or an exported ONNX classifier."""
        from rich.table import Table

        from compress.jobs.predict import predict_paths, write_predictions

        result = predict_paths(given["model"], list(given["paths"]), top_k=given["top_k"],
                               batch_size=given["batch_size"], device=given["device"], max_pixels=given["max_pixels"])
        if given["out"]:
            write_predictions(result, given["out"])
        if given["json"]:
            print_json(result.to_dict())
            return
        t = Table(title=f"{result.model}: {len(result.rows)} image(s), {result.classes} classes")
        t.add_column("file")
        t.add_column("class")
        t.add_column("confidence %", justify="right")
        if given["top_k"] > 1:
            t.add_column(f"top {given['top_k']}")
        for r in result.rows:
            extra = [", ".join(f"{lab} {100 * p:.1f}" for lab, p in r.top)] if given["top_k"] > 1 else []
            t.add_row(r.file, r.label, f"{100 * r.confidence:.1f}", *extra)
        show_table(t)
        if result.unreadable:
            err_console.print(f"[yellow]note:[/yellow] {len(result.unreadable)} unreadable file(s) skipped: "
                              f"{escape(', '.join(result.unreadable[:5]))}{' …' if len(result.unreadable) > 5 else ''}",
                              soft_wrap=True, markup=True)
        if given["out"]:
            console.print(f"written: {given['out']}")
