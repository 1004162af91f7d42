"""Blobs and XOR: shapes, dtypes, balance, determinism under the seed, device placement."""

import pytest
import torch

from mlrefresh.data import load_dataset
from mlrefresh.errors import ConfigError

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("name", ["blobs", "xor"])
def test_shapes_dtypes_and_balance(name):
    ds = load_dataset(name, n_train=301, n_val=99)
    assert ds.x_train.shape == (301, 2) and ds.x_val.shape == (99, 2)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.num_classes == 2 and ds.num_features == 2
    counts = ds.y_train.bincount(minlength=2)
    assert counts.max() - counts.min() <= 1
    assert ds.description.startswith(name)


def test_blobs_many_classes_and_features():
    ds = load_dataset("blobs", num_classes=5, num_features=7, n_train=500, n_val=50)
    assert ds.x_train.shape == (500, 7) and ds.num_classes == 5
    assert ds.y_train.bincount().tolist() == [100] * 5
    # centres sit in the first two features; the rest is pure noise around 0
    assert ds.x_train[:, 2:].mean().abs() < 0.1


@pytest.mark.parametrize("name", ["blobs", "xor"])
def test_same_seed_same_data_other_seed_other_data(name):
    a, b = load_dataset(name, seed=7), load_dataset(name, seed=7)
    c = load_dataset(name, seed=8)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.x_train, c.x_train)


@pytest.mark.parametrize("name", ["blobs", "xor"])
def test_data_does_not_depend_on_the_global_torch_seed(name):
    torch.manual_seed(1)
    a = load_dataset(name)
    torch.manual_seed(2)
    assert torch.equal(a.x_train, load_dataset(name).x_train)


@pytest.mark.parametrize("device", DEVICES)
def test_device_placement(device):
    ds = load_dataset("blobs", device=device)
    for t in (ds.x_train, ds.y_train, ds.x_val, ds.y_val):
        assert t.device.type == device
    assert torch.equal(ds.x_train.cpu(), load_dataset("blobs").x_train)


def test_xor_labels_follow_the_quadrant():
    ds = load_dataset("xor", std=0.1)
    x, y = ds.x_train, ds.y_train
    assert torch.equal(y, ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long())


def test_blobs_are_nearly_separable():
    ds = load_dataset("blobs")  # centres at (+-2.5, 0): the sign of x0 is the Bayes rule
    assert ((ds.x_val[:, 0] < 0).long() == ds.y_val).float().mean() > 0.98


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("blobs", {"num_classes": 1}, "num_classes=1 must be a whole number from 2"),
        ("blobs", {"n_train": 0}, "n_train=0 must be a whole number from 1"),
        ("xor", {"std": 0}, "std=0 must be a finite number > 0"),
        ("xor", {"num_classes": 3}, "has no option 'num_classes'"),
        ("moons", {}, "unknown dataset 'moons'"),
    ],
)
def test_bad_options_are_refused(name, options, message):
    with pytest.raises(ConfigError, match=message):
        load_dataset(name, **options)
