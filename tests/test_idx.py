"""IDX reader and writer: round trips, and one clear message for each kind of corruption."""

import gzip

import numpy as np
import pytest

from mlrefresh.data.idx import IdxError, read_idx, write_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.uint8).reshape(3, 2, 2),
        np.array([1, -2, 3], dtype=np.int8),
        np.array([[1, -30000], [7, 8]], dtype=np.int16),
        np.array([2**31 - 1, -(2**31)], dtype=np.int32),
        np.array([1.5, -2.25], dtype=np.float32),
        np.array([[np.pi]], dtype=np.float64),
    ],
)
def test_round_trip(tmp_path, suffix, array):
    path = tmp_path / f"a-idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable


def test_gzip_is_detected_from_the_content_not_the_name(tmp_path):
    write_idx(tmp_path / "x.gz", np.arange(5, dtype=np.uint8))
    (tmp_path / "x.gz").rename(tmp_path / "x-raw-name")
    np.testing.assert_array_equal(read_idx(tmp_path / "x-raw-name"), np.arange(5))


def _raw(path, payload):
    path.write_bytes(payload)
    return path


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x02ab", r"bad magic number 0x01000801"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01a", r"unknown IDX element type 0x07"),
        (b"\x00\x00\x08\x00", r"0 dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", r"truncated header"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x03abcde", r"truncated: .*\(2, 3\).*6.*5"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x02abc", r"trailing bytes"),
        (b"\x00\x00", r"too short"),
    ],
)
def test_each_corruption_has_its_own_message(tmp_path, payload, message):
    path = _raw(tmp_path / "bad-idx1-ubyte", payload)
    with pytest.raises(IdxError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_gzip_is_reported(tmp_path):
    write_idx(tmp_path / "ok.gz", np.zeros((50, 28, 28), dtype=np.uint8))
    data = (tmp_path / "ok.gz").read_bytes()
    path = _raw(tmp_path / "cut.gz", data[: len(data) // 2])
    with pytest.raises(IdxError, match="cut.gz: corrupt gzip data"):
        read_idx(path)


def test_wrong_dims_inside_valid_gzip(tmp_path):
    header = b"\x00\x00\x08\x03" + np.array([10, 28, 28], ">u4").tobytes()
    path = _raw(tmp_path / "short.gz", gzip.compress(header + bytes(28 * 28 * 9)))
    with pytest.raises(IdxError, match=r"truncated: dimensions \(10, 28, 28\)"):
        read_idx(path)


def test_writer_refuses_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="IDX cannot store int64"):
        write_idx(tmp_path / "x", np.arange(3, dtype=np.int64))
