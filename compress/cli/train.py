"""``compress train``: train one model (a teacher, an ensemble member, a baseline) without a teacher."""
from __future__ import annotations

import typer

from compress.cli.groups import DATA, DEVICE, INIT, METHOD, OUTPUT, TRAIN, UNLABELED, method_option, model_option
from compress.cli.options import Given, command
from compress.config import parse_params

MODEL = model_option("model", ("--model",), "Model-zoo name to train (see `compress models`).",
                     "resnet18 on folders, cifar_resnet20 on the digits", deprecated=("--student",))


def register(app: typer.Typer) -> None:
    @command(app, "train", DATA, MODEL, method_option("ce", "ce, or any method with --teacher"), METHOD, TRAIN,
             DEVICE, INIT, UNLABELED, OUTPUT, convert={"method_param": parse_params})
    def train(given: Given) -> None:
        """Train one model from scratch, from hub weights or from a local weights file."""
        from compress.cli.render import render_job, run_with_progress
        from compress.jobs.train_distill import JobConfig, run_train
        from compress.jobs.config_merge import load_job_config

        cfg = load_job_config(JobConfig, given.config, command="train", config_file=given["config"],
                              defaults={"method": "ce"})
        result = run_with_progress(run_train, cfg, quiet=given["json"])
        render_job(result, f"compress train — {result.rows[0].architecture} ({result.method})", as_json=given["json"])
