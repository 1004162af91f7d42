"""Data sets as in-memory tensors on a device: see `dataset.load_dataset`.

Example:
    >>> from mlrefresh.data import load_dataset
    >>> load_dataset("blobs", num_classes=3).num_classes
    3
"""

from mlrefresh.data.dataset import DATASETS, Dataset, expected_num_classes, load_dataset

__all__ = ["DATASETS", "Dataset", "expected_num_classes", "load_dataset"]
