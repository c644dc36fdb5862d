from collections import Counter

import numpy as np
import pytest

from compress.data.samplers import PKSampler, SameClassPairSampler
from compress.errors import UserInputError

LABELS = np.array([0, 1, 2, 0, 1, 2, 0, 1, 0, 3, 2, 1, 0])  # class 3 has one sample


def test_pairs_are_same_class_and_every_sample_is_an_anchor_once():
    s = SameClassPairSampler(LABELS, batch_size=4, seed=1, epoch=0)
    batches = list(s)
    assert len(batches) == len(s) == 4
    anchors = []
    for b in batches:
        n = len(b) // 2
        assert len(b) == 2 * n
        a, p = b[:n], b[n:]
        anchors += a
        for i, j in zip(a, p):
            assert LABELS[i] == LABELS[j]
            assert i != j or LABELS[i] == 3  # only the singleton class pairs with itself
    assert sorted(anchors) == list(range(len(LABELS)))


def test_pairs_are_seeded_by_seed_and_epoch():
    a = list(SameClassPairSampler(LABELS, 4, seed=3, epoch=2))
    assert a == list(SameClassPairSampler(LABELS, 4, seed=3, epoch=2))
    assert a != list(SameClassPairSampler(LABELS, 4, seed=3, epoch=3))


def test_partners_are_uniform_over_the_other_class_members():
    s = SameClassPairSampler(LABELS, batch_size=13, seed=0)
    rng = np.random.default_rng(0)
    counts = Counter(s.partner(0, rng) for _ in range(3000))  # class 0: {0, 3, 6, 8, 12}
    assert set(counts) == {3, 6, 8, 12}
    assert all(abs(c / 3000 - 0.25) < 0.04 for c in counts.values())


def test_drop_last_and_bad_input():
    assert len(SameClassPairSampler(LABELS, 4, drop_last=True)) == 3
    assert len(list(SameClassPairSampler(LABELS, 4, drop_last=True))) == 3
    with pytest.raises(UserInputError, match="batch_size"):
        SameClassPairSampler(LABELS, 0)
    with pytest.raises(UserInputError, match="integer"):
        SameClassPairSampler([0.5, 1.0], 2)


def test_pk_batches_hold_p_classes_times_k_samples():
    labels = np.repeat(np.arange(6), [5, 4, 7, 3, 6, 2])
    s = PKSampler(labels, p=3, k=2, seed=0)
    batches = list(s)
    assert len(batches) == len(s) > 0
    for b in batches:
        assert len(b) == 6
        per_class = Counter(int(labels[i]) for i in b)
        assert len(per_class) == 3 and set(per_class.values()) == {2}
    with pytest.raises(UserInputError, match="only 6"):
        PKSampler(labels, p=7, k=2)
