"""``compress distill``: teacher → baseline student → distilled student, side by side."""
from __future__ import annotations

import typer

from compress.cli.groups import (DATA, DEVICE, INIT, METHOD, OUTPUT, TEACHER, TRAIN, UNLABELED, Group, method_option,
                                 model_option)
from compress.cli.options import Flag, Float, Given, command, opt
from compress.config import parse_params

STUDENT = model_option("student", ("--student",), "Model-zoo name (see `compress models`) or checkpoint of the "
                       "student.", "the teacher pruned to --budget, its weights inherited")
BUDGET = Group("student budget", (
    opt("budget", "--budget", key="budget.macs", type=Float, show_default="0.5",
        help="Without --student: the share of the teacher's MACs the pruned student keeps."),
    opt("prune_mode", "--prune-mode", key="budget.mode", show_default="depth+width",
        help="Without --student: how the teacher is cut to --budget: width (channels of every layer), depth "
             "(whole residual blocks with an identity shortcut, least-contributing first) or depth+width (blocks "
             "as far as they go, then channels)."),
    opt("target", "--target", key="budget.target", show_default=False,
        help="Without --student: the device to choose the student for, NAME or NAME@MODE (compress profile "
             "--list-devices): the teacher pruned in width, in depth, both, or at a lower resolution, whichever "
             "meets --latency-ms and scores best after a short distillation."),
    opt("latency_ms", "--latency-ms", key="budget.latency_ms", type=Float, show_default="half the teacher's",
        help="With --target: the student's latency budget (ms, batch 1, estimated for the device)."),
    opt("precision", "--precision", key="budget.precision", show_default="fp16",
        help="With --target: the precision the student will run in on the device (fp16 or int8)."),
    opt("remote", "--remote", key="budget.remote", show_default=False,
        help="With --target: [user@]host[:port] of that device, reachable over SSH with trtexec: the teacher and "
             "the candidates are measured there (the budget, if not given, is half the teacher's measurement)."),
))
BASELINE = Group("baseline", (opt("no_baseline", "--no-baseline", type=Flag, default=False, show_default=False,
                                  help="Skip the no-teacher baseline student."),))


def register(app: typer.Typer) -> None:
    @command(app, "distill", DATA, STUDENT, BUDGET, TEACHER, method_option("kd", "kd, dkd, dist, at, sp, rkd, "
             "fitnet, pskd, erkt, kd-hr (see `compress methods`)"), METHOD, TRAIN, DEVICE, INIT, UNLABELED, BASELINE, OUTPUT,
             convert={"method_param": parse_params})
    def distill(given: Given) -> None:
        """Distil a compact student from a teacher (trained first if not given) and compare with a baseline."""
        from compress.cli.render import render_job, run_with_progress
        from compress.jobs.train_distill import JobConfig, run_distill
        from compress.jobs.config_merge import load_job_config

        if given["no_baseline"]:
            given.config["baseline"] = False
        cfg = load_job_config(JobConfig, given.config, command="distill", config_file=given["config"])
        result = run_with_progress(run_distill, cfg, quiet=given["json"])
        render_job(result, f"compress distill — method {result.method}", as_json=given["json"])
