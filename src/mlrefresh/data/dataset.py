"""The one entry point to data: `load_dataset(name, **options)` -> `Dataset` on a device.

A Dataset is four tensors already on the device (float32 features [N, D], int64 labels [N])
plus what a model needs to know about them. The whole set lives in memory: at this size a
DataLoader only adds copies.

Example:
    >>> from mlrefresh.data import load_dataset
    >>> ds = load_dataset("xor", n_train=200, seed=1)
    >>> ds.x_train.shape, ds.num_classes
    (torch.Size([200, 2]), 2)
    >>> ds.description
    'xor: 4 clusters at (+-1.5, +-1.5) labelled by XOR, std 0.5, 200 train / 1000 val, seed 1'

"""

import inspect
from dataclasses import dataclass

import torch

from mlrefresh.data import synthetic
from mlrefresh.data.mnist import SOURCES, load_mnist
from mlrefresh.errors import ConfigError

__all__ = ["Dataset", "load_dataset", "check_options", "expected_num_classes", "DATASETS"]


@dataclass
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int
    description: str

    @property
    def num_features(self) -> int:
        return self.x_train.shape[1]


def _defaults(fn):
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()}


def _blobs(device, **options):
    o = {**_defaults(synthetic.blobs), **options}
    about = (
        f"blobs: {o['num_classes']} Gaussian clusters in {o['num_features']}-D, std {o['std']}, "
        f"{o['n_train']} train / {o['n_val']} val, seed {o['seed']}"
    )
    return *(t.to(device) for t in synthetic.blobs(**options)), about


def _xor(device, **options):
    o = {**_defaults(synthetic.xor), **options}
    about = (
        f"xor: 4 clusters at (+-1.5, +-1.5) labelled by XOR, std {o['std']}, "
        f"{o['n_train']} train / {o['n_val']} val, seed {o['seed']}"
    )
    return *(t.to(device) for t in synthetic.xor(**options)), about


def _images(name):
    return lambda device, **options: load_mnist(name, device=device, **options)


# name -> (loader, the options it takes)
DATASETS = {
    "blobs": (_blobs, set(_defaults(synthetic.blobs))),
    "xor": (_xor, set(_defaults(synthetic.xor))),
    **{n: (_images(n), set(_defaults(load_mnist)) - {"name", "device"}) for n in SOURCES},
}


# What each option must be: (accepted types, how to say it)
_KINDS = {
    "num_classes": ((int,), "a whole number"),
    "num_features": ((int,), "a whole number"),
    "n_train": ((int,), "a whole number"),
    "n_val": ((int,), "a whole number"),
    "seed": ((int,), "a whole number"),
    "std": ((int, float), "a number"),
    "root": ((str, type(None)), "a folder path or null"),
    "download": ((bool,), "true or false"),
    "mirrors": ((list, tuple, type(None)), "a list of URLs, e.g. [http://host/mnist/]"),
    "checksums": ((dict, type(None)), "a mapping {file.gz: md5}"),
    "classes": ((list, tuple, type(None)), "a list of classes, e.g. [3,8]"),
    "limit": ((int, type(None)), "a whole number or null"),
}


def check_options(name: str, options: dict) -> None:
    """Refuse an unknown data set, an unknown option or a value of the wrong kind."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    known = DATASETS[name][1]
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"dataset {name} has no option {unknown[0]!r}; its options are "
            f"{', '.join(sorted(known))}"
        )
    for key, value in options.items():
        types, kind = _KINDS[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ConfigError(f"dataset.{key}={value!r} must be {kind}")


def expected_num_classes(name: str, options: dict) -> int:
    """How many classes `load_dataset(name, **options)` will give, without loading anything."""
    check_options(name, options)
    if name == "blobs":
        return int(options.get("num_classes", _defaults(synthetic.blobs)["num_classes"]))
    if name in SOURCES and options.get("classes") is not None:
        return len(options["classes"])
    return SOURCES[name].num_classes if name in SOURCES else 2


def load_dataset(name: str, *, device="cpu", **options) -> Dataset:
    """Build data set `name` with its options (the keys of configs/dataset/<name>.yaml)."""
    num_classes = expected_num_classes(name, options)  # checks the options too
    *tensors, description = DATASETS[name][0](device, **options)
    return Dataset(name, *tensors, num_classes, description)
