"""What the mutation check mutates, and the tests that must kill each mutant.

The critical modules of the toolkit's promises: checkpoints and resume, the losses and the methods' loss
terms, export parity and INT8 (quantisation, the budget fallback), data-parallel batch sharding and the
pipeline's step state. Each target lists the fast tests that cover it (seconds, no subprocess training);
the slower end-to-end tests stay in the suite.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    path: str
    functions: tuple[str, ...]
    tests: tuple[str, ...]
    select: str = ""  # a pytest -k expression that leaves out the slow ones (subprocesses, big models)


RESUME_TESTS = ("tests/engine/test_resume_kill.py::test_resume_trains_only_the_epochs_left",
                "tests/engine/test_resume.py::test_resume_matches_uninterrupted_run",
                "tests/engine/test_resume.py::test_resume_before_first_checkpoint_keeps_initial_weights",
                "tests/engine/test_restore.py")
METHOD_TESTS = ("tests/methods/test_step_terms.py", "tests/methods/test_params.py", "tests/methods/test_method_steps.py")

TARGETS: tuple[Target, ...] = (
    Target("compress/checkpoint.py", ("commit_dir", "recover_dir", "_check_fields", "check_compatible"),
           ("tests/test_commit_dir.py", "tests/test_checkpoint.py", "tests/test_manifest_checks.py")),
    Target("compress/engine/state.py", ("*",), RESUME_TESTS),
    Target("compress/engine/loop.py", ("resumable", "_restore"), RESUME_TESTS),
    Target("compress/losses/logits.py", ("*",), ("tests/losses/test_loss_logits.py", *METHOD_TESTS)),
    Target("compress/methods/kd.py", ("*",), METHOD_TESTS),
    Target("compress/methods/dkd.py", ("*",), METHOD_TESTS),
    Target("compress/methods/dist.py", ("*",), METHOD_TESTS),
    Target("compress/methods/pskd.py", ("*",), (*METHOD_TESTS, "tests/engine/test_rank_shares.py")),
    Target("compress/methods/erkt.py", ("ERKTNet.training_step",), METHOD_TESTS),
    Target("compress/engine/epoch.py", ("shard", "EpochBatches._batches", "EpochBatches.__init__"),
           ("tests/engine/test_rank_shares.py",)),
    Target("export/verify.py", ("*",), ("tests/export/test_verify.py", "tests/export/test_verify_rules.py")),
    Target("export/int8.py", ("quantize_int8", "keep_float_inputs", "weighted_nodes", "match_nodes", "module_path",
                              "scored_as_written", "runs_as_written"),
           ("tests/export/test_int8_graph.py", "tests/export/test_int8.py", "tests/export/test_quantize.py",
            "tests/models/test_qdq.py"),
           "not mobilenetv3"),
    Target("export/sensitivity.py", ("fallback_to_budget", "accuracy"),
           ("tests/export/test_int8_graph.py", "tests/export/test_int8.py", "tests/export/test_int8_budget.py")),
    Target("compress/jobs/pipeline.py", ("plan", "step_key", "Pipeline.status", "Pipeline._run_steps"),
           ("tests/jobs/test_pipeline_state.py", "tests/jobs/test_pipeline_keys.py", "tests/jobs/test_pipeline_safety.py"), "not second_process"),
)
