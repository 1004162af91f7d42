"""Data sets as in-memory tensors on a device: see `dataset.load_dataset`.

Every module of this package is imported here, so that the data sets each one registers
(`@dataset(...)`, dataset.py) are known: a new data set is one new module and its YAML.

Example:
    >>> from mlrefresh.data import load_dataset
    >>> load_dataset("blobs", num_classes=3).num_classes
    3
"""

import importlib
import pkgutil

from mlrefresh.data.dataset import DATASETS, Dataset, expected_num_classes, load_dataset

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["DATASETS", "Dataset", "expected_num_classes", "load_dataset"]
