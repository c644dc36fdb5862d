"""The LOSSES registry and its nn.Module wrappers."""
import pytest
import torch

from compress.errors import UserInputError
from compress.losses import LOSSES, AngularMarginLoss, ATLoss, CenterLoss, functional as LF

torch.manual_seed(0)
S, T = torch.randn(6, 5), torch.randn(6, 5)
Y = torch.tensor([0, 1, 2, 1, 0, 2])
FS, FT = torch.randn(6, 3, 4, 4), torch.randn(6, 8, 4, 4)


def test_registry_keys_and_unknown_name():
    assert LOSSES.names() == sorted([
        "kd", "dkd", "dist", "at", "sp", "rkd", "feature-mse", "triplet", "center",
        "angular-margin", "normalized-softmax", "nuclear-norm",
    ])
    assert LOSSES.get("feature_mse") is LOSSES.get("feature-mse")
    with pytest.raises(UserInputError, match="Unknown loss 'dst'. Known: .*dist.*Did you mean 'dist'"):
        LOSSES.get("dst")


@pytest.mark.parametrize(
    "key, kwargs, args, expected",
    [
        ("kd", {"temperature": 2.0}, (S, T), lambda: LF.kd_loss(S, T, 2.0)),
        ("dkd", {"beta": 4.0}, (S, T, Y), lambda: LF.dkd_loss(S, T, Y, 1.0, 4.0, 4.0)),
        ("dist", {"temperature": 2.0, "tau_squared": True}, (S, T), lambda: LF.dist_loss(S, T, 2.0, tau_squared=True)),
        ("at", {"p": 1.0}, (FS, FT), lambda: LF.at_loss(FS, FT, 1.0)),
        ("sp", {}, (FS, FT), lambda: LF.sp_loss(FS, FT)),
        ("rkd", {"angle_weight": 0.0}, (S, T), lambda: LF.rkd_loss(S, T, 25.0, 0.0)),
        ("feature-mse", {"reduction": "sum"}, (S, T), lambda: LF.feature_mse_loss(S, T, "sum")),
        ("triplet", {"margin": 1.0}, (S, Y), lambda: LF.triplet_loss(S, Y, 1.0)),
        ("nuclear-norm", {"normalization": "batch"}, (S.softmax(1),), lambda: LF.nuclear_norm_loss(S.softmax(1), "batch")),
    ],
)
def test_modules_match_functional(key, kwargs, args, expected):
    module = LOSSES.get(key)(**kwargs)
    assert module(*args).item() == pytest.approx(expected().item(), rel=1e-6)


def test_at_and_sp_modules_accept_lists():
    pairs = ([FS, FS[:, :, :2, :2]], [FT, FT[:, :, :2, :2]])
    expected = LF.at_loss(FS, FT) + LF.at_loss(FS[:, :, :2, :2], FT[:, :, :2, :2])
    assert ATLoss()(*pairs).item() == pytest.approx(expected.item(), rel=1e-6)
    expected_sp = LF.sp_loss(FS, FT) + LF.sp_loss(FS[:, :, :2, :2], FT[:, :, :2, :2])
    assert LOSSES.get("sp")()(*pairs).item() == pytest.approx(expected_sp.item(), rel=1e-6)


def test_center_and_angular_modules_own_learnable_parameters():
    center = CenterLoss(num_classes=3, embedding_dim=5)
    loss = center(S, Y)
    loss.backward()
    assert center.centers.shape == (3, 5) and center.centers.grad.abs().sum() > 0
    assert loss.item() == pytest.approx(LF.center_loss(S, Y, center.centers.detach()).item(), rel=1e-6)

    am = AngularMarginLoss(num_classes=3, embedding_dim=5, margin=0.3, scale_tau=0.1)
    loss = am(S, Y)
    loss.backward()
    assert am.class_weight.grad.abs().sum() > 0
    cos = am.cosine(S)
    assert cos.shape == (6, 3) and float(cos.detach().abs().max()) <= 1.0 + 1e-6
    nsl = LOSSES.get("normalized-softmax")(num_classes=3, embedding_dim=5)
    nsl.class_weight.data.copy_(am.class_weight.data)
    assert nsl(S, Y).item() == pytest.approx(LF.normalized_softmax_loss(S, am.class_weight, Y).item(), rel=1e-6)


def test_bad_module_configs():
    with pytest.raises(UserInputError, match="KDLoss: 'temperature' must be a number > 0"):
        LOSSES.get("kd")(temperature=-1.0)
    with pytest.raises(UserInputError, match="'distance' must be one of euclidean"):
        LOSSES.get("triplet")(distance="l1")
    with pytest.raises(UserInputError, match="'num_classes' must be a positive integer"):
        CenterLoss(num_classes=0, embedding_dim=4)
    with pytest.raises(UserInputError, match="'resize' must be one of interpolate, raise"):
        ATLoss(resize="crop")
    with pytest.raises(UserInputError, match="'theta_overflow' must be one of none, arcface"):
        AngularMarginLoss(3, 4, theta_overflow="clip")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_losses_finite_under_cuda_autocast():
    dev = torch.device("cuda")
    s = torch.randn(8, 5, device=dev, requires_grad=True)
    t, y = torch.randn(8, 5, device=dev), torch.randint(0, 5, (8,), device=dev)
    with torch.autocast("cuda", dtype=torch.float16):
        logits = torch.nn.functional.linear(s, torch.eye(5, device=dev))
        losses = [LF.kd_loss(logits, t), LF.dkd_loss(logits, t, y), LF.dist_loss(logits, t),
                  LF.nuclear_norm_loss(logits.softmax(1)), LF.triplet_loss(logits, y), LF.rkd_loss(logits, t)]
    total = sum(loss.float() for loss in losses)
    total.backward()
    assert all(torch.isfinite(loss) for loss in losses) and torch.isfinite(s.grad).all()


def test_teacher_tensors_made_under_inference_mode_are_accepted():
    # engines compute teacher outputs under torch.inference_mode(); those tensors must never be
    # saved for backward by a loss
    s = torch.randn(6, 5, requires_grad=True)
    fs = torch.randn(6, 3, 4, 4, requires_grad=True)
    with torch.inference_mode():
        t, ft = torch.randn(6, 5), torch.randn(6, 8, 4, 4)
    losses = [LF.kd_loss(s, t), LF.dkd_loss(s, t, Y), LF.dist_loss(s, t), LF.rkd_loss(s, t),
              LF.feature_mse_loss(s, t), LF.sp_loss(fs, ft), LF.at_loss(fs, ft), LF.pair_consistency_loss(t, s)]
    sum(losses).backward()
    assert torch.isfinite(s.grad).all() and torch.isfinite(fs.grad).all()
