"""Parity rule (Polygraphy's: fail only when abs AND rel tolerance are exceeded) and the report."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.errors import UserInputError
from export.verify import ParityCriteria, check_parity, compare_arrays, rejudge
from runtime.torch_runner import TorchRunner


def test_element_fails_only_when_both_tolerances_exceeded():
    ref = np.array([1.0, 100.0, 0.0, 0.0], np.float32)
    out = np.array([1.00005, 100.05, 1e-5, 0.0], np.float32)
    # |d| = 5e-5, 0.05, 1e-5, 0 ; rel = 5e-5, 5e-4, inf, 0 (0/0 counts as 0)
    st = compare_arrays(ref, out, atol=1e-4, rtol=1e-4)
    assert st.num_failed == 1 and not st.passed  # only 100 → 100.05 exceeds both
    assert st.max_abs == pytest.approx(0.05, rel=1e-3)
    assert st.max_rel == np.inf
    assert compare_arrays(ref, out, atol=1e-4, rtol=1e-3).passed  # rel 5e-4 <= 1e-3 saves it
    assert compare_arrays(ref, out, atol=0.1, rtol=0.0).passed  # abs 0.05 <= 0.1 saves it
    assert compare_arrays(ref, out, atol=0.0, rtol=0.0).num_failed == 3


def test_shape_mismatch_is_an_error():
    with pytest.raises(UserInputError, match="output shapes differ"):
        compare_arrays(np.zeros((2, 3)), np.zeros((3, 2)), 1e-4, 1e-4)


def test_criteria_overrides_and_validation():
    c = ParityCriteria().with_overrides({"fp16": 2e-2}, {"fp32": 1e-3}, int8_min_top1_agreement=0.95)
    assert c.atol == {"fp32": 1e-4, "fp16": 2e-2, "int8": 1e-1}
    assert c.rtol["fp32"] == 1e-3 and c.int8_min_top1_agreement == 0.95 and c.int8_max_accuracy_drop == 1.0
    with pytest.raises(UserInputError, match="precision must be one of fp32, fp16, int8"):
        ParityCriteria().with_overrides({"bf16": 1e-2})


class _Shift(torch.nn.Module):
    """Identity 'classifier' on [B, 3] with a constant added to class 0."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = shift
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x + torch.tensor([self.shift, 0.0, 0.0])


def test_check_parity_int8_rule_with_labels():
    x = np.array([[3, 1, 0], [0, 2, 1], [0, 1, 2], [1.0, 1.2, 0]], np.float32)  # argmax 0, 1, 2, 1
    labels = np.array([0, 1, 2, 0])  # reference OA = 75 %
    ref = TorchRunner(_Shift(0.0), input_shape=(-1, 3), output_names=("logits",))
    # +0.5 on class 0 flips only sample 3 (1.5 > 1.2) → agreement 3/4, OA 100 %
    cand = TorchRunner(_Shift(0.5), input_shape=(-1, 3), output_names=("logits",))
    rep = check_parity(ref, [("q", cand, "int8")], x, labels, "classify", batch=2, dynamic=True, repeats=1)
    row = rep.row("q")
    assert row.top1_agreement == 0.75 and row.accuracy == 100.0 and row.accuracy_drop == -25.0
    assert rep.row("pytorch").accuracy == 75.0
    # class-0 logits 3, 0, 0, 1 all move by 0.5: abs > 0.1 and rel 0.17, inf, inf, 0.5 > 0.1 → 4 fail
    assert row.max_abs == pytest.approx(0.5) and row.failed_elements == 4
    # labelled: judged by the OA drop, which is negative here; the flip cost the user nothing
    assert row.passed and rep.passed and row.rule == "OA drop <= 1.0 pt (top-1 agreement reported, not judged)"
    strict = ParityCriteria(int8_agreement_with_labels=True)  # --min-top1-agreement given: agreement judged too
    rep = check_parity(ref, [("q", cand, "int8")], x, labels, "classify", 2, True, strict, repeats=1)
    assert not rep.passed and rep.row("q").why == "top-1 agreement 75.00% < 99.00%"
    loose = ParityCriteria(int8_min_top1_agreement=0.7, int8_agreement_with_labels=True)
    assert check_parity(ref, [("q", cand, "int8")], x, labels, "classify", 2, True, loose, repeats=1).passed
    again = rejudge(rep, loose)  # the same measurements judged under another rule, nothing rerun
    assert again.passed and again.row("q").passed and again.row("q").rule.startswith("top-1 agreement >= 70.00%")
    assert not rep.row("q").passed  # the original report is left as it was


def test_check_parity_hands_back_each_candidates_output():
    x = np.array([[3, 1, 0], [0, 2, 1]], np.float32)
    ref = TorchRunner(_Shift(0.0), input_shape=(-1, 3), output_names=("logits",))
    outputs = {}
    check_parity(ref, [("q", TorchRunner(_Shift(0.5), input_shape=(-1, 3), output_names=("logits",)), "int8")],
                 x, None, "classify", 2, True, repeats=1, outputs=outputs)
    np.testing.assert_allclose(outputs["q"], [[3.5, 1, 0], [0.5, 2, 1]])


def test_check_parity_fp32_rule_static_batch_padding():
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    ref = TorchRunner(_Shift(0.0), input_shape=(2, 3))
    same = TorchRunner(_Shift(0.0), input_shape=(2, 3))  # static batch 2: the 5th sample is zero-padded
    rep = check_parity(ref, [("same", same, "fp32")], x, None, "classify", batch=2, dynamic=False, repeats=1)
    assert rep.passed and rep.row("same").max_abs == 0.0 and rep.num_samples == 5
    assert rep.row("same").accuracy is None
