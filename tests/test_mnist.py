"""MNIST files: lookup, download over real HTTP (127.0.0.1), checksums, classes and limit."""

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_fake_mnist
from mlrefresh.data import load_dataset
from mlrefresh.data.idx import IdxError, write_idx
from mlrefresh.data.mnist_files import FILES
from mlrefresh.errors import ConfigError, DataError

FASHION = "/usr/share/datasets/fashion-mnist"


def _listing(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_files_on_disk_load_raw_or_gz(tmp_path):
    write_fake_mnist(tmp_path / "mnist", n_train=40, n_val=20, gz=False)
    ds = load_dataset("mnist", root=str(tmp_path), download=False, verify="header")
    assert ds.x_train.shape == (40, 784) and ds.x_val.shape == (20, 784)
    assert ds.x_train.dtype == torch.float32 and ds.x_train.min() >= 0 and ds.x_train.max() <= 1
    assert ds.num_classes == 10 and ds.y_train.dtype == torch.int64
    assert "official test split" in ds.description


def test_download_from_local_http_mirror(tmp_path, http_mirror):
    url, served = http_mirror
    md5 = write_fake_mnist(served)
    root = tmp_path / "root"
    ds = load_dataset("mnist", root=str(root), mirrors=[url], checksums=md5)
    assert _listing(root / "mnist") == sorted(md5)  # the four files, no leftovers
    assert ds.x_train.shape == (40, 784)
    # a second load uses the files on disk: the server may be gone
    again = load_dataset("mnist", root=str(root), mirrors=["http://127.0.0.1:9/"], checksums=md5)
    assert torch.equal(again.x_train, ds.x_train)


def test_second_mirror_used_when_first_is_down(tmp_path, http_mirror, dead_mirror):
    url, served = http_mirror
    md5 = write_fake_mnist(served)
    ds = load_dataset("mnist", root=str(tmp_path / "r"), mirrors=[dead_mirror, url], checksums=md5)
    assert ds.x_val.shape == (20, 784)


def test_wrong_checksum_leaves_nothing_behind(tmp_path, http_mirror):
    url, served = http_mirror
    md5 = write_fake_mnist(served)
    md5["train-images-idx3-ubyte.gz"] = "0" * 32
    root = tmp_path / "root"
    with pytest.raises(DataError) as info:
        load_dataset("mnist", root=str(root), mirrors=[url], checksums=md5)
    message = str(info.value)
    assert "checksum mismatch" in message and "train-images-idx3-ubyte.gz" in message
    assert "\n" not in message
    assert _listing(root / "mnist") == []  # no partial, no unverified file


def test_failed_download_names_files_place_and_mirrors(tmp_path, http_mirror, dead_mirror):
    url, _ = http_mirror  # serves nothing: 404
    root = tmp_path / "root"
    with pytest.raises(DataError) as info:
        load_dataset("mnist", root=str(root), mirrors=[dead_mirror, url])
    message = str(info.value)
    for needle in ("t10k-labels-idx1-ubyte.gz", str(root / "mnist"), dead_mirror, "HTTP 404"):
        assert needle in message
    assert not root.exists()  # the folders made for the download are gone again


def test_missing_files_without_download(tmp_path):
    with pytest.raises(DataError, match=r"files missing: train-images.*dataset.download=true"):
        load_dataset("mnist", root=str(tmp_path), download=False, verify="header")


def test_corrupt_file_on_disk_is_named(tmp_path):
    write_fake_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(b"\x00\x00\x08")
    with pytest.raises(IdxError, match="train-labels-idx1-ubyte.gz"):
        load_dataset("mnist", root=str(tmp_path), download=False, verify="header")


def test_label_and_image_counts_must_agree(tmp_path):
    write_fake_mnist(tmp_path / "mnist", n_train=40)
    write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", torch.zeros(39).byte().numpy())
    with pytest.raises(IdxError, match="40 images but .* 39 labels"):
        load_dataset("mnist", root=str(tmp_path), download=False, verify="header")


def test_classes_relabels_and_limit_keeps_first(tmp_path):
    write_fake_mnist(tmp_path / "mnist", n_train=100, n_val=50)
    ds = load_dataset(
        "mnist", root=str(tmp_path), download=False, verify="header", classes=[8, 3], limit=7
    )
    assert ds.num_classes == 2 and ds.x_train.shape == (7, 784)
    full = load_dataset("mnist", root=str(tmp_path), download=False, verify="header")
    keep = (full.y_train == 8) | (full.y_train == 3)
    assert torch.equal(ds.x_train, full.x_train[keep][:7])
    assert torch.equal(ds.y_train, (full.y_train[keep][:7] == 3).long())  # 8 -> 0, 3 -> 1
    assert set(ds.y_val.tolist()) == {0, 1} and len(ds.y_val) == 10


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"classes": [3]}, "at least 2 different"),
        ({"classes": [3, 3]}, "at least 2 different"),
        ({"classes": [3, 10]}, "10 is not a MNIST class"),
        ({"limit": 0}, "limit=0 must be a whole number >= 1"),
        ({"checksums": {"x.gz": "0" * 32}}, "unknown file 'x.gz'"),
        ({"checksums": {"train-images-idx3-ubyte.gz": "abc"}}, "must map file names to MD5s"),
        ({"classes": 3}, r"dataset.classes=3 must be a list"),
        ({"classes": ["a", "b"]}, "give class numbers"),
        ({"mirrors": "http://127.0.0.1:9/"}, "must be a list of URLs"),
        ({"download": "yes"}, "must be true or false"),
    ],
)
def test_bad_options(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        load_dataset("mnist", root=str(tmp_path), **options)
    assert os.listdir(tmp_path) == []


def test_unwritable_root_is_a_data_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="cannot create .* set dataset.root"):
        load_dataset("mnist", root=str(tmp_path / "file"), mirrors=["http://127.0.0.1:9/"])


@pytest.mark.skipif(
    not os.path.exists(f"{FASHION}/train-images-idx3-ubyte.gz"),
    reason="apt-get install dataset-fashion-mnist",
)
def test_real_fashion_mnist(tmp_path):
    ds = load_dataset("fashion_mnist", root=str(tmp_path), download=False)
    assert ds.x_train.shape == (60000, 784) and ds.x_val.shape == (10000, 784)
    assert ds.num_classes == 10
    assert ds.y_train.bincount().tolist() == [6000] * 10
    assert ds.y_val.bincount().tolist() == [1000] * 10
    assert FASHION in ds.description


@pytest.mark.skipif(
    not os.path.exists(f"{FASHION}/train-images-idx3-ubyte.gz"),
    reason="apt-get install dataset-fashion-mnist",
)
@pytest.mark.parametrize("how", ["as Debian ships it", "unpacked", "with MNIST's other files"])
def test_fashion_mnist_files_in_the_mnist_folder_are_one_error_naming_both(tmp_path, how):
    """Fashion-MNIST's files copied into mnist/ trained as "MNIST" without a word (issue 33,
    item 5): each is known by its MD5 (Debian's .gz, or the file unpacked), and refused."""
    folder = tmp_path / "mnist"
    if how == "with MNIST's other files":  # one file of Fashion's among files of no known set
        write_fake_mnist(folder, n_train=40, n_val=20)
        os.remove(folder / "t10k-labels-idx1-ubyte.gz")
    folder.mkdir(exist_ok=True)
    for name in ("t10k-labels-idx1-ubyte",) if how.startswith("with") else FILES:
        data = Path(FASHION, f"{name}.gz").read_bytes()
        if how == "unpacked":
            (folder / name).write_bytes(gzip.decompress(data))
        else:
            (folder / f"{name}.gz").write_bytes(data)
    for verify in ("header", "md5"):  # refused whatever dataset.verify says
        with pytest.raises(DataError) as caught:
            load_dataset("mnist", root=str(tmp_path), download=False, verify=verify)
    said = str(caught.value)
    assert "is Fashion-MNIST's file" in said and "not MNIST's" in said, said
    assert "dataset=fashion_mnist" in said and "\n" not in said


@pytest.mark.parametrize("gz", [True, False])
def test_files_found_that_are_not_the_published_ones_are_one_error_line(tmp_path, gz):
    """Files on disk were checked only when downloaded (issue 33, item 5): a .gz file whose MD5
    is not the published one, or an unpacked file without the published shape (MNIST publishes
    no MD5 of its unpacked files), is refused by default, naming the flag for one's own files."""
    write_fake_mnist(tmp_path / "mnist", n_train=40, n_val=20, gz=gz)
    with pytest.raises(DataError) as caught:
        load_dataset("mnist", root=str(tmp_path), download=False)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    why = "its MD5 differs" if gz else "its IDX header declares (40, 28, 28), not (60000, 28, 28)"
    assert str(caught.value) == (
        f"{tmp_path / 'mnist' / name} is not MNIST's published {name}: {why} (a damaged or cut "
        "download, or files of your own); delete it to download it again, or train on your own "
        "IDX files with dataset.verify=header")  # fmt: skip


def test_an_unpacked_file_of_the_published_shape_passes_without_a_published_md5(tmp_path):
    from mlrefresh.data.mnist_verify import SHAPES, check_published

    folder = tmp_path / "mnist"
    found = {}
    for base, shape in SHAPES.items():  # headers alone: the check reads no further
        dims = b"".join(int(d).to_bytes(4, "big") for d in shape)
        (folder / base).parent.mkdir(exist_ok=True)
        (folder / base).write_bytes(bytes([0, 0, 8, len(shape)]) + dims)
        found[base] = str(folder / base)
    digests = {path: "0" * 32 for path in found.values()}  # no known MD5
    check_published("mnist", found, digests)  # passes: the published shapes
    swapped = {**found, "t10k-labels-idx1-ubyte": found["train-labels-idx1-ubyte"]}
    with pytest.raises(DataError, match=r"declares \(60000,\), not \(10000,\)"):
        check_published("mnist", swapped, digests)
    (folder / "other").write_bytes(b"PK\x03\x04 not an IDX file")
    with pytest.raises(DataError, match=r"it has no IDX header \(the published one declares"):
        check_published("mnist", {**found, "train-images-idx3-ubyte": str(folder / "other")},
                        {**digests, str(folder / "other"): "0" * 32})  # fmt: skip


def test_files_of_no_known_data_set_are_used_as_they_are(tmp_path):
    """A user's own IDX files (here: random images) are neither MNIST's nor Fashion-MNIST's
    published files: they load with dataset.verify=header, in mnist/ and in fashion_mnist/."""
    for name in ("mnist", "fashion_mnist"):
        write_fake_mnist(tmp_path / name, n_train=40, n_val=20)
        ds = load_dataset(name, root=str(tmp_path), download=False, verify="header")
        assert len(ds.x_train) == 40


# --- well-formed IDX files that are wrong for the data set: one IdxError line each -------------


def _replace(folder, name, array):
    write_idx(folder / f"{name}.gz", array)


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        ("train-labels-idx1-ubyte", np.array([0, 1, -3, 2] * 10, dtype=np.int8),
         r"labels must be in \[0, 10\), found -3 at index 2"),
        ("train-labels-idx1-ubyte", np.arange(40, dtype=np.float32) % 10,
         "labels must be whole numbers, found float32"),
        ("train-images-idx3-ubyte", np.zeros((40, 28, 28), dtype=np.float32),
         r"pixels must be uint8 \(0-255\), found float32"),
        ("t10k-images-idx3-ubyte", np.zeros((20, 14, 14), dtype=np.uint8),
         "196 pixels per image, but the training images .* have 784"),
        ("train-images-idx3-ubyte", np.zeros((0, 28, 28), dtype=np.uint8),
         "holds 0 images but .* holds 40 labels"),
    ],
)  # fmt: skip
def test_wrong_content_for_the_data_set(tmp_path, name, array, message):
    write_fake_mnist(tmp_path / "mnist", n_train=40, n_val=20)
    _replace(tmp_path / "mnist", name, array)
    with pytest.raises(IdxError, match=message):
        load_dataset("mnist", root=str(tmp_path), download=False, verify="header")


def test_zero_samples_in_both_files(tmp_path):
    write_fake_mnist(tmp_path / "mnist", n_train=40, n_val=20)
    _replace(tmp_path / "mnist", "train-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8))
    _replace(tmp_path / "mnist", "train-labels-idx1-ubyte", np.zeros((0,), np.uint8))
    with pytest.raises(IdxError, match="holds no samples"):
        load_dataset("mnist", root=str(tmp_path), download=False, verify="header")


def test_header_whose_size_overflows(tmp_path):
    """dims whose product overflows int64: reported as a size mismatch, not a crash."""
    write_fake_mnist(tmp_path / "mnist", n_train=40, n_val=20)
    header = bytes([0, 0, 0x08, 3]) + np.array([2**32 - 1] * 3, ">u4").tobytes()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + b"x"))
    with pytest.raises(IdxError, match="truncated: dimensions .* need"):
        load_dataset("mnist", root=str(tmp_path), download=False, verify="header")


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs Linux's /proc")
def test_unreadable_file_is_named(tmp_path):
    """A file that is there but cannot be read (here /proc/self/mem, whose first bytes give an
    I/O error, even to root): one line naming it, not a traceback."""
    write_fake_mnist(tmp_path / "mnist", n_train=40, n_val=20)
    target = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    target.unlink()
    target.symlink_to("/proc/self/mem")
    with pytest.raises(IdxError, match=r"train-images-idx3-ubyte.gz: cannot be read \(.*error"):
        load_dataset("mnist", root=str(tmp_path), download=False, verify="header")
