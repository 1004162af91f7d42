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
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from mlrefresh import checks
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
    posterior: Callable | None = None  # the true p(y|x) [N, K] of generated data, else None

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
    if o["outliers"]:
        about += f", {o['outliers']} outliers {o['outlier_distance']} beyond the last class"

    def posterior(x):  # exact for the Gaussian clusters; outliers are not part of that model
        return synthetic.blobs_posterior(x, **o)

    return *(t.to(device) for t in synthetic.blobs(**options)), about, posterior


def _xor(device, **options):
    o = {**_defaults(synthetic.xor), **options}
    about = (
        f"xor: 4 clusters at (+-1.5, +-1.5) labelled by XOR, std {o['std']}, "
        f"{o['n_train']} train / {o['n_val']} val, seed {o['seed']}"
    )
    return (
        *(t.to(device) for t in synthetic.xor(**options)),
        about,
        lambda x: synthetic.xor_posterior(x, **o),
    )


def _images(name):
    return lambda device, **options: (*load_mnist(name, device=device, **options), None)


# name -> (loader, the options it takes)
DATASETS = {
    "blobs": (_blobs, set(_defaults(synthetic.blobs))),
    "xor": (_xor, set(_defaults(synthetic.xor))),
    **{n: (_images(n), set(_defaults(load_mnist)) - {"name", "device"}) for n in SOURCES},
}


_WHOLE = {  # option -> (lowest, highest)
    "num_classes": (2, 10_000),
    "num_features": (1, 1_000_000),
    "n_train": (1, 100_000_000),
    "n_val": (1, 100_000_000),
    "seed": (0, checks.MAX_SEED),
    "outliers": (0, 1_000_000),
}
_MAX_ELEMENTS = 2**30  # 4 GiB of float32: more generated data than a refresher needs
_MD5 = re.compile(r"^[0-9a-f]{32}$")


def _check_value(key, value):
    name = f"dataset.{key}"
    if key in _WHOLE:
        low, high = _WHOLE[key]
        checks.whole(name, value, low=low, high=high)
    elif key == "std":
        checks.number(name, value, low=0, low_open=True, high=1e6, example=1.0)
    elif key == "outlier_distance":
        checks.number(name, value, low=0, high=1e6, example=20)
    elif key == "limit" and value is not None:
        checks.whole(name, value, low=1, example=500)
    elif key == "download":
        checks.flag(name, value)
    elif key == "root" and value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{name}={value!r} must be a folder path, or null for data/")
    elif key == "mirrors" and value is not None:
        if not isinstance(value, (list, tuple)) or not all(isinstance(m, str) and m for m in value):
            raise ConfigError(f"{name}={value!r} must be a list of URLs, e.g. [http://host/mnist/]")
    elif key == "checksums" and value is not None:
        good = isinstance(value, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) and _MD5.match(v) for k, v in value.items()
        )
        if not good:
            raise ConfigError(
                f"{name}={value!r} must map file names to MD5s, e.g. {{file.gz: <32 hex digits>}}"
            )
    elif key == "classes" and value is not None and not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name}={value!r} must be a list of classes, e.g. '[3,8]'")


def check_options(name: str, options: dict) -> None:
    """Refuse an unknown data set, an unknown option or a value of the wrong kind or range."""
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
        _check_value(key, value)
    if name in ("blobs", "xor"):
        o = {**_defaults(getattr(synthetic, name)), **options}
        elements = (o["n_train"] + o["n_val"] + o.get("outliers", 0)) * o.get("num_features", 2)
        if elements > _MAX_ELEMENTS:
            raise ConfigError(
                f"dataset {name}: (n_train + n_val) x num_features = {elements:,} numbers, more "
                f"than {_MAX_ELEMENTS:,} (4 GiB); lower dataset.n_train or dataset.num_features"
            )


def expected_num_classes(name: str, options: dict) -> int:
    """How many classes `load_dataset(name, **options)` will give, without loading anything."""
    check_options(name, options)
    if name == "blobs":
        return int(options.get("num_classes", _defaults(synthetic.blobs)["num_classes"]))
    if name in SOURCES and options.get("classes") is not None:
        return len(options["classes"])
    return SOURCES[name].num_classes if name in SOURCES else 2


_CACHE: OrderedDict[tuple, Dataset] = OrderedDict()  # the last data sets this process loaded
_CACHE_SIZE = 2


def load_dataset(name: str, *, device="cpu", cache=False, **options) -> Dataset:
    """Build data set `name` with its options (the keys of configs/dataset/<name>.yaml).

    cache=True: the jobs of a sweep that run in one process (basic launcher, a joblib worker)
    share the tensors of the last two data sets loaded, keyed by name, device and every option;
    the caller must not change them in place (training does not)."""
    num_classes = expected_num_classes(name, options)  # checks the options too
    key = None
    if cache:  # the key costs a JSON dump of the options: only when the cache is used
        key = (name, str(torch.device(device)), json.dumps(options, sort_keys=True, default=repr))
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    *tensors, description, posterior = DATASETS[name][0](device, **options)
    dataset = Dataset(name, *tensors, num_classes, description, posterior)
    if cache:
        _CACHE[key] = dataset
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return dataset
