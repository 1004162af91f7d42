"""The one entry point to data: `load_dataset(name, **options)` -> `Dataset` on a device.

A Dataset is four tensors already on the device (float32 features [N, D], int64 labels [N])
plus what a model needs to know about them. The whole set lives in memory: at this size a
DataLoader only adds copies.

Each data set is one loader function in its own module, registered with `@dataset(...)`: its
keyword options, annotated with their types and ranges, are the keys of
configs/dataset/<name>.yaml (schema.py reads them). Every module of this package is imported
by the package (data/__init__.py), so a new file is all a new data set needs, with its YAML.

Example:
    >>> from mlrefresh.data import load_dataset
    >>> ds = load_dataset("xor", n_train=200, seed=1)
    >>> ds.x_train.shape, ds.num_classes
    (torch.Size([200, 2]), 2)
    >>> ds.description
    'xor: 4 clusters at (+-1.5, +-1.5) labelled by XOR, std 0.5, 200 train / 1000 val, seed 1'

"""

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mlrefresh import schema
from mlrefresh.errors import ConfigError

__all__ = ["DATASETS", "Dataset", "Loader", "check_options", "dataset", "expected_num_classes",
           "from_bytes", "load_dataset"]  # fmt: skip


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
    # images: their uint8 pixels [N, D], x_train == from_bytes(train_bytes) exactly; the
    # training step gathers its batches from these, a quarter of the bytes (epoch.batch)
    train_bytes: torch.Tensor | None = None
    class_names: tuple[str, ...] | None = None  # each label's name where the data set has one

    @property
    def num_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def step_inputs(self) -> torch.Tensor:
        """What the training step gathers its batches from: the bytes, if any, or x_train."""
        return self.x_train if self.train_bytes is None else self.train_bytes


_BYTE_MAX = torch.tensor(255.0, dtype=torch.float32)  # the quotient's dtype, whatever the default


def from_bytes(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels as float32 features in [0, 1]: pixels / 255, rounded once, in one kernel
    (the bytes converted inside the division: 31 against 33 us a 128-row batch at one thread)."""
    return torch.div(pixels, _BYTE_MAX)


@dataclass(frozen=True)
class Loader:
    load: Callable  # load(**options, device=...) -> Dataset
    num_classes: Callable[[dict], int]  # how many classes these options give, without loading
    check: Callable[[dict], None] | None = None  # a rule across options, run before any work


DATASETS: dict[str, Loader] = {}


def dataset(name: str | None = None, *, num_classes, check=None):
    """Register a loader as data set `name` (default: the function's name). num_classes: a
    number, or a function of the options (all of them, defaults filled in)."""
    count = num_classes if callable(num_classes) else lambda _options: num_classes

    def register(load):
        DATASETS[name or load.__name__] = Loader(load, count, check)
        return load

    return register


def _with_defaults(name, options) -> dict:
    return {**{f.name: f.default for f in schema.fields(DATASETS[name].load)}, **options}


def check_options(name: str, options: dict) -> None:
    """Refuse an unknown data set, an unknown option or a value of the wrong kind or range."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    loader = DATASETS[name]
    known = sorted(f.name for f in schema.fields(loader.load))
    unknown = sorted(set(options) - set(known) - {"name"})
    if unknown:
        raise ConfigError(
            f"dataset {name} has no option {unknown[0]!r}; its options are {', '.join(known)}"
        )
    schema.check_values("dataset", loader.load, options, known=("name", *known))
    if loader.check is not None:
        loader.check(_with_defaults(name, options))


def expected_num_classes(name: str, options: dict) -> int:
    """How many classes `load_dataset(name, **options)` will give, without loading anything."""
    check_options(name, options)
    return int(DATASETS[name].num_classes(_with_defaults(name, options)))


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
    data = DATASETS[name].load(**options, device=device)
    assert data.num_classes == num_classes, (name, options)  # the loader keeps its word
    if cache:
        _CACHE[key] = data
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return data
