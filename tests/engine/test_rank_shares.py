"""What each data-parallel rank trains on: its share of every global batch keeps the sampler's layout.

PSKD's batches are anchors then their same-class partners, so a rank's share must hold anchors AND their
partners; P×K batches (JOC) must stay whole identity groups; and the shares, put back together, must be
the global batch a single process trains on. Ranks are simulated (no process group needed).
"""
import numpy as np
import pytest
import torch

import compress.engine.epoch as epoch_mod
from compress.data.samplers import PKSampler, SameClassPairSampler
from compress.engine.train_config import TrainConfig
from compress.engine.epoch import EpochBatches, shard
from compress.methods import build_method
from compress.models import create_model

LABELS = np.repeat(np.arange(6), 10)  # 60 images, 6 classes


def test_shard_by_layout_by_hand():
    pairs = list(range(8)) + list(range(100, 108))  # anchors 0..7 then partners 100..107
    assert shard(pairs, "pairs", 0, 2) == [0, 1, 2, 3, 100, 101, 102, 103]
    assert shard(pairs, "pairs", 1, 2) == [4, 5, 6, 7, 104, 105, 106, 107]
    groups = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert shard(groups, ("groups", 3), 0, 2) == [0, 0, 0, 1, 1, 1]
    assert shard(groups, ("groups", 3), 1, 2) == [2, 2, 2, 3, 3, 3]
    assert shard(list(range(6)), "flat", 1, 3) == [2, 3]
    assert shard(pairs, "pairs", 0, 1) == pairs


def _rank_batches(method, monkeypatch, world, batch_size, epoch=1):
    out = []
    for r in range(world):
        monkeypatch.setattr(epoch_mod, "rank", lambda r=r: r)
        monkeypatch.setattr(epoch_mod, "world_size", lambda: world)
        eb = EpochBatches(method, LABELS, TrainConfig(batch_size=batch_size, seed=4, device="cpu"))
        eb.set_epoch(epoch)
        out.append([[i for i, e in b] for b in eb])
        assert all(e == epoch for b in eb for _, e in b)
    return out


class _Sampled:
    """A stand-in method that only supplies its batch sampler."""

    def __init__(self, make):
        self.make = make

    def batch_sampler(self, labels, batch_size, seed, epoch):
        return self.make(labels, batch_size, seed, epoch)


def test_pskd_pairs_stay_together_on_each_rank(monkeypatch):
    method = _Sampled(lambda l, b, s, e: SameClassPairSampler(l, b, seed=s, epoch=e))
    (single,) = _rank_batches(method, monkeypatch, 1, 8)
    r0, r1 = _rank_batches(method, monkeypatch, 2, 8)
    assert len(r0) == len(r1) == len(single) == 8  # 60 anchors: 7 batches of 8 and one of 4 (2 per rank)
    for g, a, b in zip(single, r0, r1):
        n, m = len(g) // 2, len(a) // 2
        assert len(b) == len(a) and 2 * m == n
        for share in (a, b):
            assert (LABELS[share[:m]] == LABELS[share[m:]]).all()  # every anchor has its partner on its rank
        assert a[:m] + b[:m] == g[:n] and a[m:] + b[m:] == g[n:]  # together: the global anchors and partners


def test_pk_groups_stay_whole_and_the_ranks_rebuild_the_global_batch(monkeypatch):
    method = _Sampled(lambda l, b, s, e: PKSampler(l, p=4, k=3, seed=s, epoch=e))
    (single,) = _rank_batches(method, monkeypatch, 1, 12)
    r0, r1 = _rank_batches(method, monkeypatch, 2, 12)
    assert single and len(r0) == len(r1) == len(single)
    for g, a, b in zip(single, r0, r1):
        assert a + b == g  # gathered in rank order, the relating losses see the single-process batch
        for share in (a, b):
            labels = LABELS[share].reshape(2, 3)
            assert (labels == labels[:, :1]).all() and labels[0, 0] != labels[1, 0]  # two whole groups


def test_flat_batches_split_in_order(monkeypatch):
    from compress.methods.ce import CrossEntropy

    method = CrossEntropy(torch.nn.Linear(1, 1), num_classes=6, image_size=8, in_chans=1)
    (single,) = _rank_batches(method, monkeypatch, 1, 16)
    r0, r1 = _rank_batches(method, monkeypatch, 2, 16)
    assert [a + b for a, b in zip(r0, r1)] == [g for g in single if len(g) == 16]


def test_pskd_loss_of_two_rank_shares_averages_to_the_single_process_loss():
    """Without the mixup term (β = 0), PSKD's CE and pair terms are batch means: the mean of the two ranks'
    losses (what DDP's gradient averaging optimises) equals the loss of the whole batch."""
    torch.manual_seed(0)
    m = build_method("pskd", create_model("cifar_resnet8", 6, 1), create_model("cifar_resnet8", 6, 1),
                     {"beta": 0.0}, num_classes=6, image_size=8, in_chans=1).eval()
    (batch,) = [b for b in SameClassPairSampler(LABELS, 8, seed=1) if len(b) == 16][:1]
    images = torch.randn(len(LABELS), 1, 8, 8)

    def terms(idx):
        out = m.training_step(images[idx], torch.as_tensor(LABELS[idx]))
        return {k: v.item() for k, v in out.losses.items() if k in ("ce", "pair")}

    whole = terms(batch)
    shares = [terms(shard(batch, "pairs", r, 2)) for r in range(2)]
    for k in whole:
        assert whole[k] == pytest.approx((shares[0][k] + shares[1][k]) / 2, rel=1e-5)
    with pytest.raises(Exception, match="same-class partners"):
        terms(shard(batch, "flat", 0, 2))  # a flat split pairs anchors with other anchors


def test_groups_are_never_split_even_when_they_do_not_divide_over_the_ranks():
    groups = [0, 0, 1, 1, 2, 2]  # three groups of two over two ranks: one each, the third left out
    assert shard(groups, ("groups", 2), 0, 2) == [0, 0] and shard(groups, ("groups", 2), 1, 2) == [1, 1]


class _Fixed:
    """A sampler with fixed global batches and a layout."""

    layout = "pairs"

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


def test_a_global_batch_the_ranks_cannot_share_evenly_is_dropped(monkeypatch):
    batches = [[0, 1, 2, 3, 10, 11, 12, 13], [4, 5, 6, 14, 15, 16], []]  # 4 pairs, 3 pairs, an empty batch
    method = _Sampled(lambda l, b, s, e: _Fixed(batches))
    (single,) = _rank_batches(method, monkeypatch, 1, 8)
    assert single == batches[:2]  # one process trains every non-empty batch
    r0, r1 = _rank_batches(method, monkeypatch, 2, 8)
    assert r0 == [[0, 1, 10, 11]] and r1 == [[2, 3, 12, 13]]  # 3 pairs cannot go 1.5 per rank


def test_batches_are_tagged_with_epoch_0_until_an_epoch_is_set(monkeypatch):
    monkeypatch.setattr(epoch_mod, "rank", lambda: 0)
    monkeypatch.setattr(epoch_mod, "world_size", lambda: 1)
    eb = EpochBatches(_Sampled(lambda l, b, s, e: _Fixed([[1, 2]])), LABELS, TrainConfig(batch_size=2, device="cpu"))
    assert list(eb) == [[(1, 0), (2, 0)]] and len(eb) == 1


@pytest.mark.parametrize("n, batch, sizes", [(61, 30, [30, 30]), (67, 30, [30, 30, 7]), (31, 30, [30]),
                                             (9, 4, [4, 4]), (10, 4, [4, 4, 2])])
def test_without_drop_last_a_tiny_last_batch_is_not_a_step(n, batch, sizes):
    """ERKT's preset (batch 30, drop_last off) on AID 20 % ended every epoch with a one-image batch: a full
    AdamW step and a BatchNorm update from it. A last batch under a quarter of the batch (at least 2) goes."""
    from compress.methods.presets import load_preset

    cfg = TrainConfig(batch_size=batch, drop_last=False, seed=0, device="cpu")
    ce = build_method("ce", create_model("cifar_resnet8", 2, 1), None, {}, num_classes=2, image_size=8, in_chans=1)
    eb = EpochBatches(ce, np.zeros(n, dtype=int), cfg)
    assert [len(b) for b in eb] == sizes
    erkt = load_preset("erkt")["train"]
    assert erkt["drop_last"] is False and erkt["batch_size"] == 30  # the preset the rule protects
