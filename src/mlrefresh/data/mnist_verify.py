"""Are the MNIST-family files found on disk the data set's own? (`dataset.verify`, mnist.py)

`verify=md5` (the default): each `.gz` file must have its published MD5 (or the one
`dataset.checksums` gives, or a known recompression: Debian's Fashion-MNIST), and an unpacked
file a known MD5 or, where none is published (MNIST's unpacked files), the published shape in
its IDX header (60000 or 10000 samples of 28x28). A file that is neither is one error line: a
damaged or cut download, or files of one's own, which `verify=header` allows (their IDX headers
and sizes are still read and checked, idx.py). Another data set's file is refused either way
(mnist_files.check_not_another).

Example:
    >>> from mlrefresh.data.mnist_verify import SHAPES
    >>> SHAPES["t10k-images-idx3-ubyte"]
    (10000, 28, 28)
"""

import struct

from mlrefresh.data.mnist_files import SOURCES
from mlrefresh.errors import DataError

__all__ = ["SHAPES", "VERIFY", "check_published"]

VERIFY = ("md5", "header")  # dataset.verify's choices
SHAPES = {
    "train-images-idx3-ubyte": (60000, 28, 28),
    "train-labels-idx1-ubyte": (60000,),
    "t10k-images-idx3-ubyte": (10000, 28, 28),
    "t10k-labels-idx1-ubyte": (10000,),
}


def _dims(path: str) -> tuple | None:
    """The dimensions an unpacked IDX file's header declares (None: no IDX header)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or not 1 <= head[3] <= 3:
                return None
            raw = f.read(4 * head[3])
        return struct.unpack(f">{head[3]}I", raw) if len(raw) == 4 * head[3] else None
    except OSError:
        return None


def check_published(name: str, found: dict, digests: dict, checksums=None) -> None:
    """DataError (one line) for the first file found for data set `name` that is not its
    published file. digests: {path: MD5} of the files found (a file missing from it could not
    be read: reading it says so, in idx.py's words)."""
    source = SOURCES[name]
    for base, path in found.items():
        if path is None or path not in digests:
            continue
        known = set(source.known.get(base, ()))
        if path.endswith(".gz"):
            published = (checksums or {}).get(base + ".gz", source.md5[base + ".gz"])
            if digests[path] in known | {published}:
                continue
            what = f"{base}.gz: its MD5 differs"
        else:
            dims = None if digests[path] in known else _dims(path)  # the header, read once
            if digests[path] in known or dims == SHAPES[base]:
                continue
            what = (
                f"{base}: its IDX header declares {dims}, not {SHAPES[base]}"
                if dims
                else f"{base}: it has no IDX header (the published one declares {SHAPES[base]})"
            )
        raise DataError(
            f"{path} is not {source.title}'s published {what} (a damaged or cut download, or "
            "files of your own); delete it to download it again, or train on your own IDX "
            "files with dataset.verify=header"
        )
