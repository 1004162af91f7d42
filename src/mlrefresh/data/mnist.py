"""MNIST and Fashion-MNIST: find the four IDX files, download the missing ones, load them.

Files are looked for, as `<name>.gz` or raw `<name>`, in `<root>/mnist/` (or
`<root>/fashion_mnist/`), and for Fashion-MNIST also in `/usr/share/datasets/fashion-mnist/`
(Debian's `dataset-fashion-mnist`). Files found on disk are validated as IDX; downloaded ones
are first checked against the published MD5. Pixels become float32 in [0, 1], flattened to 784
features; the official test split is the validation set.

Example:
    >>> from mlrefresh.data.mnist import load_mnist
    >>> x_train, y_train, x_val, y_val, about = load_mnist(
    ...     "fashion_mnist", classes=[0, 9], limit=500)  # doctest: +SKIP
    >>> x_train.shape, about  # doctest: +SKIP
    (torch.Size([500, 784]), 'Fashion-MNIST: 500 train / 2000 val (the official test split)...')
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mlrefresh.data.download import DownloadFailed, fetch
from mlrefresh.data.idx import IdxError, read_idx
from mlrefresh.errors import ConfigError, DataError

__all__ = ["SOURCES", "default_root", "find_files", "load_mnist"]

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class Source:
    title: str
    folder: str  # under dataset.root
    mirrors: tuple[str, ...]
    md5: dict  # published checksums of the .gz files
    system_dirs: tuple[str, ...] = ()
    num_classes: int = 10


SOURCES = {
    "mnist": Source(
        title="MNIST",
        folder="mnist",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion_mnist": Source(
        title="Fashion-MNIST",
        folder="fashion_mnist",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        system_dirs=("/usr/share/datasets/fashion-mnist",),
    ),
}


def default_root() -> Path:
    """`data/` at the project root (whatever the working directory); for an installed,
    non-editable package, `~/.cache/mlrefresh/data`."""
    project = Path(__file__).resolve().parents[3]
    if (project / "pyproject.toml").exists():
        return project / "data"
    return Path.home() / ".cache" / "mlrefresh" / "data"


def find_files(name: str, root) -> dict:
    """{file: path or None} for the four files, looked up where the module docstring says."""
    source = SOURCES[name]
    folders = [Path(root) / source.folder, *map(Path, source.system_dirs)]
    found = {}
    for base in FILES:
        candidates = (folder / f for folder in folders for f in (base + ".gz", base))
        found[base] = next((str(p) for p in candidates if p.is_file()), None)
    return found


def _download_missing(source, missing, folder, mirrors, md5):
    created, parent = [], Path(folder).resolve()
    while not parent.exists():  # the folders makedirs will create, innermost first
        created.append(parent)
        parent = parent.parent
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create {folder} for the {source.title} files ({exc.strerror}); set "
            "dataset.root to a folder you can write to"
        ) from None
    try:
        for base in missing:
            fetch(base + ".gz", md5[base + ".gz"], mirrors, folder)
    except DownloadFailed as exc:
        still = [b + ".gz" for b in missing if not (Path(folder) / (b + ".gz")).exists()]
        why = "; ".join(f"{url}: {reason}" for url, reason in exc.reasons)
        raise DataError(
            f"{source.title} files missing: {', '.join(still)}. Download failed from every "
            f"mirror ({why}). Put the files in {folder}/ by hand (see README, 'MNIST on an "
            "offline machine'), or point dataset.root or dataset.mirrors elsewhere"
        ) from None
    finally:  # leave no trace of an attempt that brought nothing (a failure, Ctrl-C, SIGTERM)
        for made in created:
            if made.is_dir() and not any(made.iterdir()):
                made.rmdir()


def _locate(name, root, download, mirrors, checksums):
    source = SOURCES[name]
    root = Path(root) if root is not None else default_root()
    found = find_files(name, root)
    missing = [base for base, path in found.items() if path is None]
    if missing:
        folder = str(root / source.folder)
        if not download:
            raise DataError(
                f"{source.title} files missing: {', '.join(b + '.gz' for b in missing)}; put "
                f"them in {folder}/ or set dataset.download=true"
            )
        md5 = dict(source.md5)
        for key, value in (checksums or {}).items():
            if key not in md5:
                raise ConfigError(
                    f"dataset.checksums: unknown file {key!r}; use one of {list(md5)}"
                )
            md5[key] = value
        _download_missing(source, missing, folder, list(mirrors or source.mirrors), md5)
        found = find_files(name, root)
    return found


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


def load_mnist(
    name="mnist",
    root=None,
    download=True,
    mirrors=None,
    checksums=None,
    classes=None,
    limit=None,
    device="cpu",
):
    """(x_train, y_train, x_val, y_val, description), tensors on `device`."""
    source = SOURCES[name]
    classes = _check_options(source, classes, limit)
    paths = _locate(name, root, download, mirrors, checksums)
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
        return x.to(device).float().div_(255.0), y.to(device)

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
    return (*to_device(x_train, y_train), *to_device(x_val, y_val), about)
