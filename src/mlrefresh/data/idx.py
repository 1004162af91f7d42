"""Read and write IDX files, the format of MNIST and Fashion-MNIST, gzip-compressed or raw.

An IDX file is: two zero bytes, a type byte, the number of dimensions, one big-endian uint32 per
dimension, then the data, big-endian, row-major. The reader checks all of it and names the file
and the problem in one line (`IdxError`) when anything is off.

Example:
    >>> import numpy as np, tempfile, os
    >>> from mlrefresh.data.idx import read_idx, write_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte.gz")
    >>> write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
    >>> read_idx(path)
    array([3, 1, 4], dtype=uint8)
"""

import gzip
import math
import os
import zlib

import numpy as np

from mlrefresh.errors import DataError

__all__ = ["IdxError", "read_idx", "write_idx"]

# type byte -> big-endian numpy dtype
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class IdxError(DataError):
    """A file that is not a valid IDX file."""


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise IdxError(
            f"{path}: cannot be read ({exc.strerror or exc}); check its permissions, or delete "
            "it and download again"
        ) from None
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)  # one C call: much faster than streaming through GzipFile
    except (OSError, EOFError, zlib.error) as exc:
        raise IdxError(f"{path}: corrupt gzip data ({exc}); delete it and download again") from exc


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (gzip detected from the content, not the name)."""
    path = os.fspath(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise IdxError(f"{path}: only {len(data)} bytes, too short for an IDX header")
    if data[0] != 0 or data[1] != 0:
        raise IdxError(
            f"{path}: bad magic number 0x{data[:4].hex()} (an IDX file starts with two zero "
            "bytes); is this an IDX file?"
        )
    type_byte, ndim = data[2], data[3]
    if type_byte not in _DTYPES:
        raise IdxError(f"{path}: unknown IDX element type 0x{type_byte:02x}")
    if ndim == 0:
        raise IdxError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(f"{path}: truncated header: {ndim} dimensions need {header} bytes")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _DTYPES[type_byte]
    expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
    actual = len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing bytes"
        raise IdxError(
            f"{path}: {what}: dimensions {dims} of {dtype.name} need {expected} data bytes, "
            f"found {actual}; delete it and download again"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array as IDX; gzip-compressed when the name ends in .gz."""
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in _DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"IDX cannot store {array.dtype}; use one of {sorted(map(str, codes))}")
    header = bytes([0, 0, codes[native], array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + array.astype(native.newbyteorder(">"), copy=False).tobytes()
    path = os.fspath(path)
    if path.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with open(path, "wb") as f:
        f.write(payload)
