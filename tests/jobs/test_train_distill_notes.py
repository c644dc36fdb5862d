"""The one-line notes under the distill table: a student that ended below its no-teacher baseline."""
from compress.engine.stage import StageSummary
from compress.jobs.train_distill import below_baseline


def _row(role, oa, method="kd"):
    return StageSummary(role, "mobilenetv3_small", method, 1.0, oa, None, None, 5, 5, 1.0, "")


def test_a_student_below_its_baseline_gets_one_line_with_what_to_try():
    note = below_baseline([_row("teacher", 0.9, "ce"), _row("baseline", 0.488, "ce"), _row("student", 0.434)])
    assert note == ("the kd student (43.40%) ended 5.4 pt below the no-teacher baseline (48.80%): distillation did "
                    "not help here. Try a student pruned from the teacher (leave out --student, or compress prune TEACHER "
                    "--macs 0.5, then "
                    "--student PRUNED), more --epochs, or a smaller distillation weight (compress methods kd).")
    assert "\n" not in note
    pruned = below_baseline([_row("baseline", 0.488, "ce"), _row("student", 0.434)], pruned=True)
    assert "Try more --epochs, or a smaller distillation weight" in pruned and "prune" not in pruned


def test_a_method_other_than_kd_below_its_baseline_is_pointed_to_kd():
    note = below_baseline([_row("baseline", 0.5816, "ce"), _row("student", 0.5193, "dkd")], pruned=True)
    assert note == ("the dkd student (51.93%) ended 6.2 pt below the no-teacher baseline (58.16%): distillation did "
                    "not help here. Try --method kd (the default), more --epochs, or a smaller distillation weight "
                    "(compress methods dkd).")
    assert "--method kd" not in below_baseline([_row("baseline", 0.5, "ce"), _row("student", 0.4)], pruned=True)


def test_no_line_at_or_above_the_baseline_or_without_one():
    assert below_baseline([_row("baseline", 0.5, "ce"), _row("student", 0.5)]) is None
    assert below_baseline([_row("baseline", 0.5, "ce"), _row("student", 0.6)]) is None
    assert below_baseline([_row("teacher (given)", 0.9, "ce"), _row("student", 0.1)]) is None
    assert below_baseline([_row("baseline", None, "ce"), _row("student", 0.1)]) is None
