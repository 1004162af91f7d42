"""Shared fixtures: tiny IDX data sets written by the tests, a real HTTP server on 127.0.0.1,
and a finished run and sweep to copy."""

import functools
import http.server
import os
import socket
import threading

import numpy as np
import pytest
import torch

from helpers import TRAIN, cli
from mlrefresh.data.download import md5sum
from mlrefresh.data.idx import write_idx
from mlrefresh.data.mnist import FILES


def write_fake_mnist(folder, n_train=40, n_val=20, seed=0, gz=True):
    """The four MNIST files with random 28x28 images and labels 0..9 (every class present)."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_val)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(os.path.join(folder, f"{split}-images-idx3-ubyte{suffix}"), images)
        write_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte{suffix}"), labels)
    return {f + suffix: md5sum(os.path.join(folder, f + suffix)) for f in FILES}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def one_thread():
    """torch at one thread for the test: one order of every float sum, in both paths a test
    compares bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def http_mirror(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/served; yields (url, folder)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", served
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def dead_mirror():
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


QUICK = ["trainer.epochs=2", "dataset.n_train=200", "trainer.images=false"]


@pytest.fixture(scope="session")
def finished(tmp_path_factory):
    """A finished run (run/) and a finished two-job sweep (sweep/), made once; copy them
    (helpers.copy_of) before changing anything."""
    base = tmp_path_factory.mktemp("made")
    made = cli(TRAIN, *QUICK, "hydra.run.dir=run", cwd=base)
    assert made.returncode == 0, made.stderr
    made = cli(TRAIN, "-m", *QUICK, "seed=1,2", "hydra.sweep.dir=sweep", cwd=base)
    assert made.returncode == 0, made.stderr
    return base
