"""The data cache of a sweep process: the same options on the same device reuse the tensors
already loaded; other options never do; what comes back equals a fresh load, and training on
it gives the same run."""

import torch

from helpers import make_cfg
from mlrefresh.data import dataset
from mlrefresh.data.dataset import load_dataset
from mlrefresh.runs.run import train


def test_same_options_reuse_other_options_do_not():
    dataset._CACHE.clear()
    a = load_dataset("blobs", cache=True, seed=1, n_train=100)
    assert load_dataset("blobs", cache=True, n_train=100, seed=1) is a  # option order is no key
    b = load_dataset("blobs", cache=True, seed=2, n_train=100)
    assert b is not a and not torch.equal(a.x_train, b.x_train)
    assert load_dataset("xor", cache=True, seed=1, n_train=100) is not a
    assert load_dataset("blobs", seed=1, n_train=100) is not a  # cache=False: a fresh load
    fresh = load_dataset("blobs", seed=1, n_train=100)
    for name in ("x_train", "y_train", "x_val", "y_val"):
        assert torch.equal(getattr(a, name), getattr(fresh, name))
    assert len(dataset._CACHE) == 2  # the last two kept, the oldest (seed 1 blobs) dropped
    assert load_dataset("blobs", cache=True, seed=1, n_train=100) is not a


def test_a_run_on_cached_data_equals_a_run_on_fresh_data(tmp_path):
    dataset._CACHE.clear()
    cfg = make_cfg("trainer.epochs=3", "model.init=normal", "model=softmax")
    first = train(cfg, run_dir=tmp_path / "a")  # loads, caches
    assert len(dataset._CACHE) == 1
    second = train(cfg, run_dir=tmp_path / "b")  # reuses
    dataset._CACHE.clear()
    third = train(cfg, run_dir=tmp_path / "c")  # loads afresh
    for key in ("loss/val", "accuracy/val", "loss/train"):
        assert first[key] == second[key] == third[key]
