"""The mistakes and faults a new user meets, run as scripts/train.py runs them.

Each case asserts the exit code, an `error: ...` first line on stderr (and only that line where
the message is ours), no traceback, and that the files after the run equal those before, except
for what the run may create. Refusals run in-process (helpers.cli: the script as `python` runs
it, minus the start-up); a sample of them, and everything where the process itself is the
subject, run as real subprocesses (slow tier): signals are real signals sent to a child in its
own process group, as a terminal's Ctrl-C would be; the download is real HTTP from 127.0.0.1;
the full disk is a real tmpfs (skipped where mounting one is not allowed).
"""

import http.server
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import write_fake_mnist
from helpers import TRAIN, assert_one_error_line, cli, run_script, snapshot, start
from mlrefresh.data.idx import write_idx


def run(*args, cwd):
    """In-process: the refusals are the script's behaviour, not the interpreter's."""
    return cli(TRAIN, *args, cwd=cwd)


def run_process(*args, cwd, python=(sys.executable,)):
    return run_script(TRAIN, *args, cwd=cwd, python=python)


@pytest.fixture
def workdir(tmp_path):
    """A working directory holding a user's own files, which no run may touch."""
    (tmp_path / "notes.log").write_text("my own log\n")
    (tmp_path / "mylogs").mkdir()
    (tmp_path / "mylogs" / "experiment.log").write_text("keep me\n")
    return tmp_path


OURS = [  # (overrides, text of the one error line): exit code 2, nothing left behind
    (["optim.momentum=abc"], "optim.momentum='abc' must be a finite number"),
    (["optim.lr=inf"], "optim.lr=inf must be a finite number"),
    (["optim.lr=null"], "optim.lr=null must be a finite number"),
    (["seed=" + "9" * 25], "seed=9999999999999999999999999 must be a whole number"),
    (["dataset.std=nan"], "dataset.std=nan must be a finite number"),
    (["trainer.epochs=-3"], "trainer.epochs=-3 must be a whole number"),
    (["model.init=normal", "model.init_scale=inf"], "model.init_scale=inf must be a finite"),
    (["+trainer.bogus=1"], "unknown key trainer.bogus; trainer has only batch_size"),
    (["+model.bogus=1"], "unknown key model.bogus; model has only init"),
    (["+optim.bogus=1"], "unknown key optim.bogus; optim has only lr"),
    (["+bogus=1"], "unknown key bogus; the config has only dataset"),
    (["~model"], "the config has no model group"),
    (["seed=${oops}"], "Interpolation key 'oops' not found"),
    (["device.name=tpu"], "unknown device 'tpu'"),
    (["model=linear", "loss=ce"], "loss=ce needs a probability output"),
]
HYDRAS = [  # Hydra's own refusals: an error line first, Hydra's lines after it, exit code 2
    (["model=perceptron"], "unknown option model=perceptron; choose one of clamped"),
    (["device=tpu"], "unknown option device=tpu; choose one of auto, cpu, cuda"),
    (["hydra/launcher=nope"], "unknown option hydra/launcher=nope; choose one of basic"),
    (["trainer.bogus=1"], "unknown key trainer.bogus"),
    (["optim.lr=["], "cannot parse an override"),
    (["optim.lr=1,2"], "holds a comma; use -m to sweep"),
    (["+trainer.epochs=3"], "trainer.epochs exists already; set it without the +"),
    (["--config-name=nope"], "Cannot find primary config 'nope'"),
]


@pytest.mark.parametrize(("args", "text"), OURS, ids=lambda v: str(v)[:40])
def test_refused_config_one_line_exit_2_nothing_written(workdir, args, text):
    before = snapshot(workdir)
    result = run(*args, cwd=workdir)
    assert_one_error_line(result, 2, text)
    assert snapshot(workdir) == before  # not even an empty outputs/runs/<date>/


@pytest.mark.parametrize(("args", "text"), HYDRAS, ids=lambda v: str(v)[:40])
def test_hydras_errors_get_an_error_line_first(workdir, args, text):
    before = snapshot(workdir)
    result = run(*args, cwd=workdir)
    assert_one_error_line(result, 2, text, only_line=False)
    assert snapshot(workdir) == before


SWEPT = [  # a sweep value that does not compose: refused before the sweep writes anything
    (["model=logistic,perceptron"], "unknown option model=perceptron; choose one of clamped"),
    (["seed=1,2", "optim.lr=0.1,abc"], "optim.lr='abc' must be a finite number > 0"),
    (["trainer.epochs=1,abc", "hydra/launcher=stacked"], "trainer.epochs='abc' must be a whole"),
    (["hydra.sweep.dir=runs/a/b", "seed=1,x"], "seed='x' must be a whole number"),  # folders
]


@pytest.mark.parametrize(("args", "text"), SWEPT, ids=lambda v: str(v)[:40])
def test_a_sweep_job_that_does_not_compose_one_line_nothing_written(workdir, args, text):
    """Hydra's basic sweeper composes its jobs after it wrote the sweep's folder and
    multirun.yaml, and fails in its own lines with exit code 1: the jobs are checked first."""
    before = snapshot(workdir)
    result = run("-m", "trainer.epochs=1", *args, cwd=workdir)
    assert_one_error_line(result, 2, text)
    assert snapshot(workdir) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "text", "only_line"),
    [(*OURS[0], True), (*OURS[-1], True), (*OURS[11], True), (*HYDRAS[0], False),
     (*HYDRAS[4], False),
     (["hydra.run.dir=mylogs", "optim.lr=-1"], "run folder mylogs is not empty", True)],
    ids=lambda v: str(v)[:40],
)  # fmt: skip
def test_refusals_from_a_real_process(workdir, args, text, only_line):
    """The wiring the in-process runs share with a real `python scripts/train.py`: the exit
    code, the streams, and the files left behind."""
    before = snapshot(workdir)
    result = run_process(*args, cwd=workdir)
    assert_one_error_line(result, 2, text, only_line=only_line)
    assert snapshot(workdir) == before


def test_refused_run_in_a_users_folder_keeps_the_users_files(workdir):
    before = snapshot(workdir)
    result = run("hydra.run.dir=mylogs", "optim.lr=-1", cwd=workdir)
    assert_one_error_line(result, 2, "the run folder mylogs is not empty (experiment.log)")
    assert snapshot(workdir) == before  # mylogs/ and its log are still there; no .hydra/


def test_refused_run_in_a_users_empty_folder_leaves_it_empty(workdir):
    (workdir / "empty").mkdir()
    before = snapshot(workdir)
    result = run("hydra.run.dir=empty", "optim.lr=-1", cwd=workdir)
    assert_one_error_line(result, 2, "optim.lr=-1 must be")
    assert snapshot(workdir) == before  # empty/ is still there, and empty: .hydra/ is gone


def test_refused_run_in_the_working_directory_keeps_it(workdir):
    before = snapshot(workdir)
    for args in (["trainer.epochs=0"], []):
        result = run("hydra.run.dir=.", *args, cwd=workdir)
        assert_one_error_line(result, 2, "the run folder . is not empty (mylogs, notes.log)")
        assert snapshot(workdir) == before


def test_refused_run_in_a_new_named_folder_removes_only_that(workdir):
    before = snapshot(workdir)
    result = run("hydra.run.dir=new/deeper/run", "optim.lr=-1", cwd=workdir)
    assert result.returncode == 2
    assert snapshot(workdir) == before  # new/ and new/deeper/ were made by the run: gone


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("notes.log/run", "cannot create the run folder"),
        ("notes.log", "is a file, not a folder"),
        ("/proc/mlrefresh-run", "cannot create the run folder /proc/mlrefresh-run"),
        ("''", "the run folder is empty"),
    ],
)
def test_run_folder_that_cannot_be_made(workdir, where, text):
    before = snapshot(workdir)
    result = run(f"hydra.run.dir={where}", cwd=workdir)
    assert_one_error_line(result, 2, text)
    assert snapshot(workdir) == before


def test_sweep_folder_that_cannot_be_made(workdir):
    result = run("-m", "seed=1,2", "hydra.sweep.dir=notes.log/sweep", cwd=workdir)
    assert_one_error_line(result, 2, "cannot create the run folder notes.log/sweep")


@pytest.mark.slow
def test_missing_dependencies_say_how_to_run(workdir):
    result = run_process(cwd=workdir, python=(sys.executable, "-S"))  # -S: no site-packages
    assert_one_error_line(result, 2, "hydra is not installed for")
    assert ".venv/bin/python scripts/train.py" in result.stderr


def test_validation_images_of_another_shape_refused_before_training(workdir):
    write_fake_mnist(workdir / "data" / "mnist", n_train=40, n_val=20)
    write_idx(workdir / "data/mnist/t10k-images-idx3-ubyte.gz", np.zeros((20, 14, 14), np.uint8))
    before = snapshot(workdir)
    result = run(
        "dataset=mnist",
        "model=softmax",
        "dataset.root=data",
        "dataset.download=false",
        "dataset.verify=header",
        cwd=workdir,
    )  # fmt: skip (files of our own)
    assert_one_error_line(result, 2, "196 pixels per image, but the training images")
    assert "epoch 1" not in result.stdout
    assert snapshot(workdir) == before


@pytest.mark.slow
def test_stdout_closed_early_is_not_an_error(workdir):
    """`python scripts/train.py | head -1`: no BrokenPipeError, the run still completes."""
    args = [sys.executable, TRAIN, "trainer.epochs=30", "hydra.run.dir=run"]
    child = subprocess.Popen(args, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.readline()
    child.stdout.close()  # what head does after its line
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert b"BrokenPipe" not in err and b"Traceback" not in err
    assert (workdir / "run" / "metrics.json").exists()
    assert "epoch 30/30" in (workdir / "run" / "train.log").read_text()


@pytest.fixture
def tiny_disk(tmp_path):
    """A real, small file system (tmpfs); skipped where mount is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    sizes = []

    def make(kib):
        if sizes:
            subprocess.run(["umount", str(mount)], check=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(mount)],
                           capture_output=True)  # fmt: skip
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
        sizes.append(kib)
        return mount

    yield make
    if sizes:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.slow
def test_full_disk_while_writing_results(workdir, tiny_disk):
    """The disk fills up while the run writes its files: one line, exit 2, no temporary file.
    Tried at several sizes, so that each of the run's writes in turn meets the full disk."""
    outcomes = set()
    for kib in (16, 20, 24):
        disk = tiny_disk(kib)
        result = run_process("trainer.epochs=1", "trainer.images=false",
                             f"hydra.run.dir={disk}/run", cwd=workdir)  # fmt: skip
        if result.returncode == 0:
            continue
        assert_one_error_line(result, 2, "No space left on device")
        assert not [f for f in snapshot(disk) if f.endswith(".tmp")]
        outcomes.add(result.stderr.split("(")[0])
    assert len(outcomes) >= 2, outcomes  # at least two different writes met the full disk


# --- signals: real signals to real processes (slow tier) --------------------------------------


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_training(workdir, signum, code):
    child = start(["trainer.epochs=100000", "dataset.n_train=20000", "hydra.run.dir=run"], workdir)
    log = workdir / "run" / "train.log"
    wait_for(lambda: log.exists() and "epoch 2/" in log.read_text())
    os.killpg(child.pid, signum)
    _, err = child.communicate(timeout=60)
    assert child.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted at epoch "), err
    files = os.listdir(workdir / "run")
    assert [f for f in files if "tfevents" in f] and not [f for f in files if f.endswith(".tmp")]


@pytest.mark.slow
def test_second_ctrl_c_exits_at_once(workdir):
    child = start(["trainer.epochs=100000", "dataset.n_train=20000", "hydra.run.dir=run"], workdir)
    log = workdir / "run" / "train.log"
    wait_for(lambda: log.exists() and "epoch 1/" in log.read_text())
    os.killpg(child.pid, signal.SIGINT)
    os.killpg(child.pid, signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130 and "Traceback" not in err, err


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    """Sends a large file a little at a time, as a slow mirror does."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(12 * 2**20))
        self.end_headers()
        try:
            for _ in range(600):
                self.wfile.write(b"\0" * 4096)
                self.wfile.flush()
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_mirror():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_download_leaves_no_part_file(workdir, slow_mirror, signum, code):
    before = snapshot(workdir)
    child = start(["dataset=mnist", "model=softmax", "dataset.root=data",
                   f"dataset.mirrors=[{slow_mirror}]"], workdir)  # fmt: skip
    folder = workdir / "data" / "mnist"
    wait_for(lambda: folder.is_dir() and any(f.endswith(".part") for f in os.listdir(folder)))
    os.killpg(child.pid, signum)
    _, err = child.communicate(timeout=60)
    assert child.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "while loading the data" in lines[0], err
    assert snapshot(workdir) == before  # no .part, no data/mnist/, no run folder


def test_download_refused_by_every_mirror_one_line(workdir):
    before = snapshot(workdir)
    result = run("dataset=mnist", "model=softmax", "dataset.root=data",
                 "dataset.mirrors=[http://127.0.0.1:9/]", cwd=workdir)  # fmt: skip
    assert_one_error_line(result, 2, "MNIST files missing")
    assert snapshot(workdir) == before
