"""Where the MNIST-family files are: the sources (mirrors, published MD5s), the folders looked
in, and the download of the missing ones (mnist.py reads them).

Files are looked for, as `<name>.gz` or raw `<name>`, in `<root>/mnist/` (or
`<root>/fashion_mnist/`), and for Fashion-MNIST also in `/usr/share/datasets/fashion-mnist/`
(Debian's `dataset-fashion-mnist`); downloaded ones are checked against the published MD5,
found ones too (or by their IDX header, mnist_verify.py), and a file that is another data set's
(by its MD5: Fashion-MNIST's copied into mnist/) is refused.

Example:
    >>> from mlrefresh.data.mnist_files import SOURCES, find_files
    >>> SOURCES["fashion_mnist"].title, find_files("mnist", "/nowhere")["train-images-idx3-ubyte"]
    ('Fashion-MNIST', None)
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from mlrefresh.data.download import DownloadFailed, fetch, md5sum
from mlrefresh.errors import ConfigError, DataError

__all__ = ["FILES", "SOURCES", "check_not_another", "default_root", "digests_of", "find_files",
           "locate"]  # fmt: skip

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
    # more MD5s that make a file this data set's (a recompressed .gz, the unpacked file): a
    # file found for another data set with one of these is refused (check_not_another)
    known: dict = field(default_factory=dict)
    num_classes: int = 10
    names: tuple[str, ...] = tuple(str(d) for d in range(10))  # each label's name


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
        names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),  # fmt: skip
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
        known={  # Debian's dataset-fashion-mnist (recompressed .gz), and each file unpacked
            "train-images-idx3-ubyte": (
                "cf8536b0aa1a6ac5fa3f23001093305c",
                "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            ),
            "train-labels-idx1-ubyte": (
                "10bea18fdb374794d4bb42e356e600c9",
                "9018921c3c673c538a1fc5bad174d6f9",
            ),
            "t10k-images-idx3-ubyte": (
                "f78720b4224f21cce2f2ccf2d7a94c9a",
                "8181f5470baa50b63fa0f6fddb340f0a",
            ),
            "t10k-labels-idx1-ubyte": (
                "0d30e22e447f3c33dab9ed536400ac01",
                "15d484375f8d13e6eb1aabb0c3f46965",
            ),
        },  # fmt: skip
    ),
}  # MNIST's unpacked files have no published MD5: an unpacked MNIST file is not recognised


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
            f"mirror ({why}). Put the files in {folder}/ by hand (see docs/mnist.md), or "
            "point dataset.root or dataset.mirrors elsewhere"
        ) from None
    finally:  # leave no trace of an attempt that brought nothing (a failure, Ctrl-C, SIGTERM)
        for made in created:
            if made.is_dir() and not any(made.iterdir()):
                made.rmdir()


def digests_of(found: dict) -> dict:
    """{path: MD5} of the files found that can be read."""
    digests = {}
    for path in (p for p in found.values() if p is not None):
        try:
            digests[path] = md5sum(path)
        except OSError:  # unreadable: reading it says so (idx.py), in its words
            continue
    return digests


def check_not_another(name: str, found: dict, digests: dict) -> None:
    """DataError (one line) when a file found for data set `name` is another data set's, by its
    MD5 (the other's published .gz, or one of its `known`): Fashion-MNIST's files copied into
    mnist/ would train as "MNIST" without a word, whatever dataset.verify says."""
    others = {}
    for other, source in SOURCES.items():
        for base in FILES if other != name else ():
            for digest in (source.md5[base + ".gz"], *source.known.get(base, ())):
                others[digest] = (other, source, base)
    this = SOURCES[name]
    for path, digest in digests.items():
        if (match := others.get(digest)) is not None:
            other, source, base = match
            raise DataError(
                f"{path} is {source.title}'s file {base}, not {this.title}'s (its MD5 says so): "
                f"train on it with dataset={other}, or put {this.title}'s files there instead"
            )


def locate(name, root, download, mirrors, checksums, verify="md5"):
    """{file: path} of the data set's four files, found (or downloaded where missing), each
    checked: not another data set's, and with verify="md5" its published file (mnist_verify)."""
    from mlrefresh.data.mnist_verify import check_published

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
    digests = digests_of(found)
    check_not_another(name, found, digests)
    if verify == "md5":
        check_published(name, found, digests, checksums)
    return found
