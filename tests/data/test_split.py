import numpy as np
import pytest

from compress.data.split import load_split, save_split, stratified_split
from compress.errors import DataError


def _toy(n_per=(10, 20, 5)):
    keys, labels = [], []
    for c, n in enumerate(n_per):
        keys += [f"c{c}/{i:03d}.png" for i in range(n)]
        labels += [c] * n
    return keys, np.array(labels), [f"c{c}" for c in range(len(n_per))]


def test_stratified_counts_are_exact_per_class():
    keys, labels, names = _toy()
    sp = stratified_split(keys, labels, names, train_ratio=0.2, val_fraction=0.0, seed=3)
    per_class_train = {c: sum(k.startswith(f"c{c}/") for k in sp.train) for c in range(3)}
    # round(10·0.2)=2, round(20·0.2)=4, round(5·0.2)=1
    assert per_class_train == {0: 2, 1: 4, 2: 1}
    assert len(sp.test) == 35 - 7
    assert not set(sp.train) & set(sp.test)


def test_validation_is_carved_from_training_part():
    keys, labels, names = _toy((20, 20))
    sp = stratified_split(keys, labels, names, train_ratio=0.5, val_fraction=0.2, seed=0)
    assert len(sp.val) == 4 and len(sp.train) == 16 and len(sp.test) == 20
    assert not set(sp.val) & (set(sp.train) | set(sp.test))


def test_seeded_and_reproducible():
    keys, labels, names = _toy()
    a = stratified_split(keys, labels, names, train_ratio=0.5, seed=1)
    b = stratified_split(keys, labels, names, train_ratio=0.5, seed=1)
    c = stratified_split(keys, labels, names, train_ratio=0.5, seed=2)
    assert a == b and a.hash == b.hash
    assert a.train != c.train


def test_class_too_small_for_ratio_names_the_class():
    keys, labels, names = _toy((10, 1))
    with pytest.raises(DataError, match="Class 'c1' has 1 image"):
        stratified_split(keys, labels, names, train_ratio=0.5)
    keys, labels, names = _toy((10, 3))
    with pytest.raises(DataError, match="Class 'c1'.*0 for training"):
        stratified_split(keys, labels, names, train_ratio=0.1)


def test_bad_ratio():
    keys, labels, names = _toy()
    with pytest.raises(DataError, match="between 0 and 1"):
        stratified_split(keys, labels, names, train_ratio=1.0)


def test_round_trip_and_tamper_detection(tmp_path):
    keys, labels, names = _toy()
    sp = stratified_split(keys, labels, names, train_ratio=0.5, seed=4, root="/data")
    save_split(sp, tmp_path)
    assert load_split(tmp_path) == sp
    text = (tmp_path / "split.json").read_text().replace("c0/000.png", "c0/999.png")
    (tmp_path / "split.json").write_text(text)
    with pytest.raises(DataError, match="hash mismatch"):
        load_split(tmp_path)
