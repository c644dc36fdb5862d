"""Golden values for compress.metrics.classification, worked out by hand in the comments."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from compress.errors import UserInputError
from compress.metrics import classification_report, plot_confusion_png, write_confusion_csv

# 3 classes, 10 samples.
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
Y_PRED = [0, 0, 0, 1, 1, 1, 2, 2, 2, 0]
# Confusion (rows true, cols pred): true 0 → 3×0, 1×1; true 1 → 2×1, 1×2; true 2 → 1×0, 2×2.
CM = [[3, 1, 0], [0, 2, 1], [1, 0, 2]]
NAMES = ["a", "b", "c"]


def test_three_class_report_exact():
    r = classification_report(np.array(Y_TRUE), np.array(Y_PRED), NAMES)
    assert r.confusion == CM
    assert r.n == 10
    # OA = trace / n = (3 + 2 + 2) / 10
    assert r.oa == pytest.approx(0.7)
    # recall per class: 3/4, 2/3, 2/3
    assert r.per_class_accuracy == pytest.approx({"a": 0.75, "b": 2 / 3, "c": 2 / 3})
    # F1 = 2TP / (row sum + col sum): a 6/(4+4) = 3/4, b 4/(3+3) = 2/3, c 4/(3+3) = 2/3
    # macro-F1 = (3/4 + 2/3 + 2/3) / 3 = (25/12) / 3 = 25/36
    assert r.per_class_f1 == pytest.approx({"a": 0.75, "b": 2 / 3, "c": 2 / 3})
    assert r.macro_f1 == pytest.approx(25 / 36)
    # kappa: po = 0.7; pe = (4·4 + 3·3 + 3·3) / 10² = 0.34; (0.7 − 0.34) / (1 − 0.34) = 0.36 / 0.66 = 6/11
    assert r.kappa == pytest.approx(6 / 11)


def test_torch_inputs_and_json():
    r = classification_report(torch.tensor(Y_TRUE), torch.tensor(Y_PRED), NAMES)
    d = r.to_dict()
    assert d["oa"] == pytest.approx(0.7)
    assert d["confusion"] == CM
    assert d["class_names"] == NAMES
    import json

    json.dumps(d)  # plain JSON types only


def test_absent_class_gets_none_and_does_not_change_macro():
    # Class "d" (index 3) never occurs in truth or prediction: accuracy and F1 undefined → None;
    # macro-F1 averages the 3 occurring classes (25/36 as above); kappa is unchanged (zero row/col).
    r = classification_report(Y_TRUE, Y_PRED, NAMES + ["d"])
    assert r.per_class_accuracy["d"] is None
    assert r.per_class_f1["d"] is None
    assert r.macro_f1 == pytest.approx(25 / 36)
    assert r.kappa == pytest.approx(6 / 11)
    assert r.confusion[3] == [0, 0, 0, 0]


def test_class_never_predicted_has_zero_f1():
    # y_true [0, 1], y_pred [0, 0]: cm [[1, 0], [1, 0]]. F1(a) = 2/(1+2) = 2/3, F1(b) = 0/(1+0) = 0,
    # macro = 1/3. kappa: po = 1/2, pe = (1·2 + 1·0)/4 = 1/2 → 0.
    r = classification_report([0, 1], [0, 0], ["a", "b"])
    assert r.per_class_accuracy == {"a": 1.0, "b": 0.0}
    assert r.macro_f1 == pytest.approx(1 / 3)
    assert r.kappa == pytest.approx(0.0)


def test_single_class_kappa_undefined():
    # pe = 1 when truth and prediction are one class: kappa = 0/0 → None, OA = 1.
    r = classification_report([0, 0, 0], [0, 0, 0], ["a", "b"])
    assert r.kappa is None
    assert r.oa == 1.0
    assert r.per_class_accuracy["b"] is None


@pytest.mark.parametrize(
    "y_true, y_pred, names, match",
    [
        ([0, 1, 2], [0, 1], NAMES, "y_true has 3 rows but y_pred has 2"),
        ([], [], NAMES, "y_true is empty"),
        ([0, 3], [0, 1], NAMES, "class index 3 but only 3 class names"),
        ([0, -1], [0, 1], NAMES, "negative class index"),
        ([0.5, 1.0], [0, 1], NAMES, "integer class indices"),
        ([[0, 1]], [[0, 1]], NAMES, "must be 1-D"),
        ([0, 1], [0, 1], [], "class_names is empty"),
        ([0, 1], [0, 1], ["a", "a"], "duplicates"),
    ],
)
def test_bad_inputs(y_true, y_pred, names, match):
    with pytest.raises(UserInputError, match=match):
        classification_report(y_true, y_pred, names)


def test_confusion_csv_exact(tmp_path):
    path = write_confusion_csv(tmp_path / "out" / "cm.csv", CM, NAMES)
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [["true\\pred", "a", "b", "c"], ["a", "3", "1", "0"], ["b", "0", "2", "1"], ["c", "1", "0", "2"]]
    assert [p.name for p in path.parent.iterdir()] == ["cm.csv"]  # no temporary file left


def test_confusion_csv_shape_mismatch(tmp_path):
    with pytest.raises(UserInputError, match="one row per class name"):
        write_confusion_csv(tmp_path / "cm.csv", CM, ["a", "b"])


def test_confusion_png_30_classes(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"class_with_long_name_{i:02d}" for i in range(30)]
    t = rng.integers(0, 30, 400)
    p = np.where(rng.random(400) < 0.7, t, rng.integers(0, 30, 400))
    r = classification_report(t, p, names)
    path = plot_confusion_png(tmp_path / "cm.png", r.confusion, names, normalize=True)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    assert [x.name for x in tmp_path.iterdir()] == ["cm.png"]


def test_confusion_png_accepts_report(tmp_path):
    r = classification_report(Y_TRUE, Y_PRED, NAMES)
    path = plot_confusion_png(tmp_path / "cm.png", r, NAMES, normalize=False)
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 1_000
