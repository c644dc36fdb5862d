"""The pipeline report's plots: labels a reader can tell apart."""


def test_labels_of_points_that_sit_together_stack_and_name_the_int8_flavour():
    from compress.jobs.pipeline_report import label_offsets, point_label

    xy = [(0.100, 95.55), (0.107, 95.55), (0.101, 95.551), (0.35, 95.36)]
    assert label_offsets(xy) == [3.0, 12.0, 21.0, 3.0]  # three within 4 % of both ranges stack; the far one does not
    assert point_label({"model": "kd", "precision": "int8 (trt)"}) == "kd int8-trt"
    assert point_label({"model": "kd", "precision": "int8 (cpu) — PARITY FAILED"}) == "kd int8-cpu"
    assert point_label({"model": "teacher", "precision": "fp32 (checkpoint)"}) == "teacher fp32 ckpt"
