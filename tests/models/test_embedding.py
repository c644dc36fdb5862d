"""Embedding models: shapes, what embed() returns, cosine logits, checkpoint round trip."""
import numpy as np
import pytest
import torch

from compress.checkpoint import Manifest, save_checkpoint
from compress.models.restore import load_checkpoint
from compress.errors import UserInputError
from compress.models import create_model


def test_bnneck_forward_and_embeddings():
    m = create_model("embed-bnneck", num_classes=5, in_chans=1, backbone="cifar-resnet8").eval()
    x = torch.randn(4, 1, 16, 16)
    f_t, logits = m.neck_outputs(x)
    assert f_t.shape == (4, 64) and logits.shape == (4, 5) and m.embedding_dim == 64
    assert torch.equal(m(x), logits)
    assert torch.equal(m.embed(x), f_t)  # pre-bn: F_t
    post = create_model("embed-bnneck", num_classes=5, in_chans=1, backbone="cifar-resnet8", embedding="post-bn").eval()
    post.load_state_dict(m.state_dict())
    bn = m.neck
    expect = (f_t - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    assert torch.allclose(post.embed(x), expect, atol=1e-6)


def test_cosine_net_logits_are_cosines_over_tau():
    m = create_model("embed-cosine", num_classes=3, in_chans=3, backbone="cifar-resnet8", embedding_dim=8,
                     scale_tau=0.1).eval()
    x = torch.randn(5, 3, 16, 16)
    e = m.embed(x).detach().numpy()
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)
    w = m.prototypes.detach().numpy()
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    np.testing.assert_allclose(m(x).detach().numpy(), e @ w.T / 0.1, atol=1e-5)


@pytest.mark.parametrize("kwargs,match", [({"embedding": "mid"}, "pre-bn, post-bn"),
                                          ({"backbone": "embed-cosine"}, "itself an embedding")])
def test_bnneck_bad_kwargs(kwargs, match):
    with pytest.raises(UserInputError, match=match):
        create_model("embed-bnneck", num_classes=2, **{"backbone": "cifar-resnet8", **kwargs})


def test_cosine_bad_tau():
    with pytest.raises(UserInputError, match="scale_tau"):
        create_model("embed-cosine", num_classes=2, backbone="cifar-resnet8", scale_tau=0)


def test_checkpoint_round_trip_rebuilds_from_manifest(tmp_path):
    kw = {"backbone": "cifar-resnet8", "embedding_dim": 6}
    m = create_model("embed-cosine", num_classes=3, in_chans=4, **kw).eval()
    man = Manifest(architecture="embed-cosine", num_classes=3, in_chans=4, image_size=16, mean=(0.5,) * 4,
                   std=(0.25,) * 4, class_names=("a", "b", "c"), task="embedding", model_kwargs=kw)
    save_checkpoint(tmp_path / "ck", m, man)
    ck = load_checkpoint(tmp_path / "ck")
    x = torch.randn(2, 4, 16, 16)
    assert torch.equal(ck.model.embed(x), m.embed(x))
