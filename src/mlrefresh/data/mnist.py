"""MNIST and Fashion-MNIST: load the four IDX files (found or downloaded by mnist_files.py).

Files are checked against the published MD5 (found ones too, or by their header where none is
published; `dataset.verify=header` for files of your own: mnist_verify.py), then read as IDX.
Pixels become float32 in [0, 1], flattened to 784 features; the official test split is the
validation set.

Registered as the data sets `mnist` and `fashion_mnist`; the keyword options of `load_mnist`
are the keys of their configs.

Example:
    >>> from mlrefresh.data.mnist import load_mnist
    >>> ds = load_mnist("fashion_mnist", classes=[0, 9], limit=500)  # doctest: +SKIP
    >>> ds.x_train.shape, ds.description  # doctest: +SKIP
    (torch.Size([500, 784]), 'Fashion-MNIST: 500 train / 2000 val (the official test split)...')
"""

import functools
import os
import re
from collections.abc import Mapping
from typing import Annotated

import numpy as np
import torch

from mlrefresh.checks import choice, flag, rule, whole
from mlrefresh.data.dataset import Dataset, dataset, from_bytes
from mlrefresh.data.idx import IdxError, read_idx
from mlrefresh.data.mnist_files import FILES, SOURCES, locate
from mlrefresh.data.mnist_verify import VERIFY
from mlrefresh.errors import ConfigError, DataError

__all__ = ["FILES", "SOURCES", "load_mnist"]


def _read_split(images_path, labels_path, num_classes):
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise IdxError(f"{images_path}: expected images [N, rows, cols], got dims {images.shape}")
    if images.dtype != np.uint8:
        raise IdxError(f"{images_path}: pixels must be uint8 (0-255), found {images.dtype}")
    if labels.ndim != 1:
        raise IdxError(f"{labels_path}: expected labels [N], got dims {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise IdxError(f"{labels_path}: labels must be whole numbers, found {labels.dtype}")
    if len(images) != len(labels):
        raise IdxError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
            "labels; the files do not belong together"
        )
    if len(images) == 0 or images.shape[1] * images.shape[2] == 0:
        raise IdxError(
            f"{images_path}: holds no samples (dims {images.shape}); delete it and download again"
        )
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise IdxError(
            f"{labels_path}: labels must be in [0, {num_classes}), found {labels[bad][0]} at "
            f"index {int(np.flatnonzero(bad)[0])}; delete it and download again"
        )
    x, y = torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
    return x.reshape(len(x), -1), y


def _select(x, y, classes, num_classes):
    """Keep the given classes, relabelled 0..len(classes)-1 in the order given."""
    lookup = torch.full((num_classes,), -1, dtype=torch.long)
    lookup[torch.tensor(classes)] = torch.arange(len(classes))
    new = lookup[y]
    keep = new >= 0
    return x[keep], new[keep]


def _check_options(source, classes, limit):
    if classes is not None:
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
            raise ConfigError(f"dataset.classes={list(classes)}: give class numbers, e.g. [3,8]")
        classes = list(classes)
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ConfigError(f"dataset.classes={classes}: give at least 2 different classes")
        bad = [c for c in classes if not 0 <= c < source.num_classes]
        if bad:
            raise ConfigError(
                f"dataset.classes: {bad[0]} is not a {source.title} class; use 0..9, "
                "e.g. dataset.classes=[3,8]"
            )
    if limit is not None and int(limit) < 1:
        raise ConfigError(f"dataset.limit={limit} must be at least 1 (or null for all samples)")
    return classes


_MD5 = re.compile(r"^[0-9a-f]{32}$")


def _folder(key, value):
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}={value!r} must be a folder path, or null for data/")


def _urls(key, value):
    urls = isinstance(value, (list, tuple)) and all(isinstance(m, str) for m in value)
    if not urls or not all("://" in m for m in value):
        raise ConfigError(f"{key}={value!r} must be a list of URLs, e.g. [http://host/mnist/]")


def _md5s(key, value):
    good = isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) and _MD5.match(v) for k, v in value.items()
    )
    if not good:
        raise ConfigError(
            f"{key}={value!r} must map file names to MD5s, e.g. {{file.gz: <32 hex digits>}}"
        )


def _class_list(key, value):
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}={value!r} must be a list of classes, e.g. '[3,8]'")


def load_mnist(
    name="mnist",
    # null: data/ at the project root; files in <root>/<name>/ (and Debian's folder)
    root: Annotated[str | None, _folder] = None,
    download: Annotated[bool, rule(flag)] = True,  # fetch missing files, checked by MD5
    mirrors: Annotated[list[str] | None, _urls] = None,  # null: the standard public mirrors
    checksums: Annotated[dict[str, str] | None, _md5s] = None,  # null: the published MD5s
    # md5: files found are the published ones (MD5, or an unpacked file's header); header:
    # files of your own, their IDX headers checked (mnist_verify.py)
    verify: Annotated[str, rule(choice, choices=VERIFY)] = "md5",
    classes: Annotated[list[int] | None, _class_list] = None,  # e.g. [3,8], relabelled 0..n-1
    limit: Annotated[int | None, rule(whole, low=1, example=500)] = None,  # first N train samples
    *,
    device="cpu",
) -> Dataset:
    """The data set `name` (a key of SOURCES), its tensors on `device`."""
    source = SOURCES[name]
    classes = _check_options(source, classes, limit)
    paths = locate(name, root, download, mirrors, checksums, verify)
    splits = []
    for images, labels in ((FILES[0], FILES[1]), (FILES[2], FILES[3])):
        x, y = _read_split(paths[images], paths[labels], source.num_classes)
        if classes is not None:
            x, y = _select(x, y, classes, source.num_classes)
        splits.append((x, y, images))
    (x_train, y_train, train_file), (x_val, y_val, val_file) = splits
    if x_train.shape[1] != x_val.shape[1]:
        raise IdxError(
            f"{paths[val_file]}: {x_val.shape[1]} pixels per image, but the training images in "
            f"{paths[train_file]} have {x_train.shape[1]}; the files do not belong together"
        )
    if limit is not None:
        x_train, y_train = x_train[: int(limit)], y_train[: int(limit)]
    if len(x_train) == 0 or len(x_val) == 0:
        split = "training" if len(x_train) == 0 else "validation"
        raise DataError(
            f"{source.title}: no {split} samples of classes {classes}; choose other dataset.classes"
        )

    def to_device(x, y):  # move the uint8 pixels (4x smaller), then convert on the device
        return x.to(device), y.to(device)

    num_classes = len(classes) if classes is not None else source.num_classes
    about = (
        f"{source.title}: {len(x_train)} train / {len(x_val)} val (the official test split), "
        f"{x_train.shape[1]} features, {num_classes} classes"
    )
    if classes is not None:
        about += f" (classes {classes} relabelled 0..{num_classes - 1})"
    if limit is not None:
        about += f", first {len(x_train)} training samples"
    where = sorted({os.path.dirname(p) for p in paths.values()})
    about += f", from {', '.join(where)}"
    (pixels, y_train), (val_pixels, y_val) = to_device(x_train, y_train), to_device(x_val, y_val)
    tensors = (from_bytes(pixels), y_train, from_bytes(val_pixels), y_val)
    names = tuple(source.names[c] for c in classes) if classes is not None else source.names
    return Dataset(name, *tensors, num_classes, about, train_bytes=pixels, class_names=names)


for _name in SOURCES:
    dataset(
        _name,
        num_classes=lambda o, n=_name: len(o["classes"] or ()) or SOURCES[n].num_classes,
    )(functools.partial(load_mnist, _name))
