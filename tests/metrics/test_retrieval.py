"""Golden values for compress.metrics.retrieval on 1-D toys where the ranking can be enumerated."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from compress.errors import UserInputError
from compress.metrics import PRCurve, plot_pr_curve_png, retrieval_report, write_pr_curve_csv

# Gallery on a line: positions 1..5 with labels A B A B A (A = 0, B = 1).
GALLERY = np.array([[1.0], [2.0], [3.0], [4.0], [5.0]])
GALLERY_Y = np.array([0, 1, 0, 1, 0])
# Query 1 at 0 (label A) ranks the gallery 1,2,3,4,5 → relevance 1 0 1 0 1 (3 relevant).
# Query 2 at 6 (label B) ranks it 5,4,3,2,1 → relevance 0 1 0 1 0 (2 relevant).
QUERY = np.array([[0.0], [6.0]])
QUERY_Y = np.array([0, 1])

# Query 1: hits at ranks 1, 3, 5 → P = 1/1, 2/3, 3/5 → AP = (1 + 2/3 + 3/5)/3 = 34/45.
#          mAP@R (R = 3): (1 + 2/3)/3 = 5/9; R-precision: 2 of top 3 = 2/3.
#          P@1 = 1, P@2 = 1/2, P@5 = 3/5. mAP@2: hits in top 2 = {1} → 1/1 = 1; mAP@5 = 34/45.
# Query 2: hits at ranks 2, 4 → P = 1/2, 2/4 → AP = 1/2. mAP@R (R = 2): (1/2)/2 = 1/4;
#          R-precision: 1 of top 2 = 1/2. P@1 = 0, P@2 = 1/2, P@5 = 2/5. mAP@2 = 1/2, mAP@5 = 1/2.
AP1, AP2 = 34 / 45, 1 / 2


def test_two_query_toy_exact():
    r = retrieval_report(QUERY, QUERY_Y, GALLERY, GALLERY_Y, ks=(1, 2, 5))
    assert (r.n_queries, r.n_gallery, r.exclude_self, r.n_queries_skipped) == (2, 5, False, 0)
    assert r.map == pytest.approx((AP1 + AP2) / 2)  # = 113/180
    assert r.map == pytest.approx(113 / 180)
    assert r.map_at_r == pytest.approx((5 / 9 + 1 / 4) / 2)  # = 29/72
    assert r.r_precision == pytest.approx((2 / 3 + 1 / 2) / 2)  # = 7/12
    assert r.precision_at_k == pytest.approx({1: 0.5, 2: 0.5, 5: 0.5})  # (1+0)/2, (½+½)/2, (⅗+⅖)/2
    assert r.map_at_k == pytest.approx({1: 0.5, 2: 0.75, 5: 113 / 180})  # mAP@1: (1 + 0)/2


def test_pr_curve_11_points():
    # Query 1: precision at recall 1/3, 2/3, 1 = 1, 2/3, 3/5. Interpolated (max precision at recall ≥ r):
    #   r ∈ {0,.1,.2,.3} → 1; r ∈ {.4,.5,.6} → 2/3; r ∈ {.7,.8,.9,1} → 3/5.
    # Query 2: precision at recall ½, 1 = ½, ½ → ½ at every level.
    q1 = np.array([1, 1, 1, 1, 2 / 3, 2 / 3, 2 / 3, 0.6, 0.6, 0.6, 0.6])
    r = retrieval_report(QUERY, QUERY_Y, GALLERY, GALLERY_Y, ks=(1,))
    assert r.pr_curve.recall == pytest.approx(tuple(np.linspace(0, 1, 11)))
    assert r.pr_curve.precision == pytest.approx(tuple((q1 + 0.5) / 2))


def test_single_query_ap_matches_sklearn():
    from sklearn.metrics import average_precision_score

    r = retrieval_report(QUERY[:1], QUERY_Y[:1], GALLERY, GALLERY_Y, ks=(1,))
    assert r.map == pytest.approx(AP1)
    assert average_precision_score(GALLERY_Y == 0, -np.abs(GALLERY[:, 0])) == pytest.approx(AP1)


def test_exclude_self_same_set():
    # Points 0, 1, 3, 7 with labels A A B B, each ranking the other three:
    #   0 → 1(A) 3(B) 7(B): AP 1;  1 → 0(A) 3(B) 7(B): AP 1;
    #   3 → 1(A) 0(A) 7(B): AP 1/3;  7 → 3(B) 1(A) 0(A): AP 1.   mAP = (3 + 1/3)/4 = 5/6.
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    y = np.array([0, 0, 1, 1])
    r = retrieval_report(x, y, x.copy(), y.copy(), ks=(1, 3))
    assert r.exclude_self and r.n_gallery == 3
    assert r.map == pytest.approx(5 / 6)
    assert r.precision_at_k[1] == pytest.approx(3 / 4)
    # Keeping self in the gallery puts it first: 3 → 3(B) 1(A) 0(A) 7(B): AP (1 + 2/4)/2 = 3/4.
    r_keep = retrieval_report(x, y, x, y, ks=(1,), exclude_self=False)
    assert not r_keep.exclude_self and r_keep.n_gallery == 4
    assert r_keep.map == pytest.approx((3 + 3 / 4) / 4)
    # Excluding self across blocks of one row gives the same answer.
    assert retrieval_report(x, y, x, y, ks=(1, 3), block_size=1) == r


def test_query_without_relevant_items_is_skipped():
    q = np.vstack([QUERY, [[2.5]]])
    qy = np.append(QUERY_Y, 7)  # class 7 is not in the gallery
    r = retrieval_report(q, qy, GALLERY, GALLERY_Y, ks=(1, 2, 5))
    assert r.n_queries == 2 and r.n_queries_skipped == 1
    assert r.map == pytest.approx(113 / 180)


def _naive(q, qy, g, gy, k):
    """Independent per-query loop: full sort by euclidean distance, no self-exclusion."""
    aps, aprs, pks = [], [], []
    for x, lab in zip(q, qy):
        order = np.argsort(np.linalg.norm(g - x, axis=1), kind="stable")
        rel = (gy[order] == lab).astype(float)
        n_rel = int(rel.sum())
        prec = np.cumsum(rel) / np.arange(1, len(rel) + 1)
        aps.append(sum(prec[i] for i in range(len(rel)) if rel[i]) / n_rel)
        aprs.append(sum(prec[i] for i in range(n_rel) if rel[i]) / n_rel)
        pks.append(rel[:k].mean())
    return np.mean(aps), np.mean(aprs), np.mean(pks)


@pytest.mark.parametrize("block_size", [None, 1, 4])
def test_random_matches_naive_loop(block_size):
    rng = np.random.default_rng(3)
    q, qy = rng.normal(size=(13, 4)), rng.integers(0, 3, 13)
    g, gy = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
    r = retrieval_report(torch.tensor(q), torch.tensor(qy), g, gy, ks=(5,), block_size=block_size)
    ap, apr, p5 = _naive(q, qy, g, gy, 5)
    assert (r.map, r.map_at_r, r.precision_at_k[5]) == pytest.approx((ap, apr, p5))


def test_metric_choice_changes_ranking():
    # Cosine ignores length: for the query (1, 0), (10, 1) is closer than (1, 1) by angle but not by euclidean.
    q, qy = np.array([[1.0, 0.0]]), np.array([0])
    g, gy = np.array([[1.0, 1.0], [10.0, 1.0]]), np.array([1, 0])
    assert retrieval_report(q, qy, g, gy, "euclidean", ks=(1,)).precision_at_k[1] == 0.0
    assert retrieval_report(q, qy, g, gy, "cosine", ks=(1,)).precision_at_k[1] == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(metric="hamming"), "Unknown distance 'hamming'"),
        (dict(ks=(1, 6)), "P@6 asks for more results than the 5 gallery items"),
        (dict(ks=(0,)), "positive integers"),
        (dict(exclude_self=True), "exclude_self=True needs the query set to be the gallery set"),
        (dict(ks=(1,), n_recall_points=1), "n_recall_points must be"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(UserInputError, match=match):
        retrieval_report(QUERY, QUERY_Y, GALLERY, GALLERY_Y, **kwargs)


def test_bad_arrays():
    with pytest.raises(UserInputError, match="query_emb has 2 rows but query_labels has 3"):
        retrieval_report(QUERY, [0, 1, 0], GALLERY, GALLERY_Y)
    with pytest.raises(UserInputError, match="gallery_emb is empty"):
        retrieval_report(QUERY, QUERY_Y, np.zeros((0, 1)), np.zeros(0))
    with pytest.raises(UserInputError, match="no query has a relevant item"):
        retrieval_report(QUERY, [8, 9], GALLERY, GALLERY_Y, ks=(1,))


def test_pr_csv_and_png(tmp_path):
    r = retrieval_report(QUERY, QUERY_Y, GALLERY, GALLERY_Y, ks=(1,), n_recall_points=3)
    # 3 levels (0, .5, 1): query 1 → 1, 2/3, 3/5; query 2 → ½ → means 3/4, 7/12, 11/20
    assert r.pr_curve.precision == pytest.approx((0.75, 7 / 12, 0.55))
    other = PRCurve((0.0, 0.5, 1.0), (1.0, 0.5, 0.25))
    path = write_pr_curve_csv(tmp_path / "pr.csv", {"student": r, "teacher": other})
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [
        ["recall", "student", "teacher"],
        ["0", "0.750000", "1.000000"],
        ["0.5", "0.583333", "0.500000"],
        ["1", "0.550000", "0.250000"],
    ]
    png = plot_pr_curve_png(tmp_path / "pr.png", {"student": r, "teacher": other})
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5_000
    with pytest.raises(UserInputError, match="other recall levels"):
        write_pr_curve_csv(tmp_path / "bad.csv", {"a": r, "b": PRCurve((0.0, 1.0), (1.0, 0.5))})
    with pytest.raises(UserInputError, match="non-empty"):
        plot_pr_curve_png(tmp_path / "bad.png", {})


def test_to_dict_is_json():
    import json

    d = retrieval_report(QUERY, QUERY_Y, GALLERY, GALLERY_Y, ks=(1, 5)).to_dict()
    assert set(d["precision_at_k"]) == {"1", "5"}
    assert len(d["pr_curve"]["precision"]) == 11
    json.dumps(d)
