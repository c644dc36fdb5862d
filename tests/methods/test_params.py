"""Each method's settings are checked at their edges: the smallest legal value passes, one step past it is
one line naming the setting."""
import pytest

from compress.errors import UserInputError
from compress.methods.dist import DISTParams
from compress.methods.dkd import DKDParams, warmup_factor
from compress.methods.kd import KDParams
from compress.methods.pskd import PSKDParams

BAD = [
    (KDParams, {"temperature": 0.0}, "kd temperature must be > 0, got 0.0"),
    (KDParams, {"alpha": -0.01}, r"kd alpha must be in \[0, 1\], got -0.01"),
    (KDParams, {"alpha": 1.01}, r"kd alpha must be in \[0, 1\], got 1.01"),
    (DKDParams, {"temperature": 0.0}, "dkd temperature must be > 0"),
    (DKDParams, {"alpha": -1.0}, "dkd alpha, beta and ce_weight must be ≥ 0"),
    (DKDParams, {"beta": -1.0}, "dkd alpha, beta and ce_weight must be ≥ 0"),
    (DKDParams, {"ce_weight": -1.0}, "dkd alpha, beta and ce_weight must be ≥ 0"),
    (DKDParams, {"warmup_epochs": -1}, "dkd warmup_epochs must be ≥ 0, got -1"),
    (DISTParams, {"temperature": 0.0}, "dist temperature must be > 0"),
    (DISTParams, {"gamma": -0.5}, "dist beta, gamma and ce_weight must be ≥ 0"),
    (PSKDParams, {"temperature": 0.0}, "pskd temperature and mixup_alpha must be > 0"),
    (PSKDParams, {"mixup_alpha": 0.0}, "pskd temperature and mixup_alpha must be > 0"),
    (PSKDParams, {"beta": -0.1}, "pskd alpha, beta and gamma must be ≥ 0"),
]
EDGES = [
    (KDParams, {"temperature": 0.5, "alpha": 0.0}), (KDParams, {"alpha": 1.0}),
    (DKDParams, {"temperature": 0.5, "alpha": 0.0, "beta": 0.0, "ce_weight": 0.0, "warmup_epochs": 0}),
    (DISTParams, {"temperature": 0.5, "beta": 0.0, "gamma": 0.0, "ce_weight": 0.0}),
    (PSKDParams, {"temperature": 0.5, "mixup_alpha": 0.5, "alpha": 0.0, "beta": 0.0, "gamma": 0.0}),
]


@pytest.mark.parametrize("cls,kwargs,words", BAD)
def test_one_step_past_an_edge_is_refused(cls, kwargs, words):
    with pytest.raises(UserInputError, match=words):
        cls(**kwargs)


@pytest.mark.parametrize("cls,kwargs", EDGES)
def test_the_edges_are_accepted(cls, kwargs):
    p = cls(**kwargs)
    assert all(getattr(p, k) == v for k, v in kwargs.items())


@pytest.mark.parametrize("epoch,warmup,factor", [(0, 0, 1.0), (5, 0, 1.0), (0, 4, 0.25), (2, 4, 0.75), (3, 4, 1.0),
                                                 (9, 4, 1.0), (0, 1, 1.0)])
def test_dkd_warmup_factor(epoch, warmup, factor):
    assert warmup_factor(epoch, warmup) == factor
