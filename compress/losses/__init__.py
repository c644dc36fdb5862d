"""Distillation and metric-learning losses: pure functions in ``functional``, registered
``nn.Module`` wrappers in ``modules`` (``LOSSES.get("dist")(...)``)."""
from compress.losses import functional
from compress.losses.modules import (
    LOSSES,
    AngularMarginLoss,
    ATLoss,
    CenterLoss,
    DISTLoss,
    DKDLoss,
    FeatureMSELoss,
    KDLoss,
    NormalizedSoftmaxLoss,
    NuclearNormLoss,
    RKDLoss,
    SPLoss,
    TripletLoss,
)

__all__ = [
    "LOSSES",
    "ATLoss",
    "AngularMarginLoss",
    "CenterLoss",
    "DISTLoss",
    "DKDLoss",
    "FeatureMSELoss",
    "KDLoss",
    "NormalizedSoftmaxLoss",
    "NuclearNormLoss",
    "RKDLoss",
    "SPLoss",
    "TripletLoss",
    "functional",
]
