"""A battery of bad inputs and faults, as a careful new user and an unlucky cluster meet them.

Every case: one `error:` line first (only that line where the message is ours), the documented
exit code, no traceback, and no file that the user named or another run owns changed. Grouped
by class: folders the user named, one process per folder, checkpoints that load but do not
belong, damaged records the summary reads. In-process (helpers.cli) unless a real process is
the subject (two processes at once, SIGKILL: slow tier).
"""

import contextlib
import fcntl
import io
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import QUICK
from helpers import (
    ROOT,
    TRAIN,
    assert_one_error_line,
    copy_of,
    snapshot,
    start,
    train_py,
    wait_for_epoch,
)
from test_sweeps import read_csv

# --- 1. a folder the user named is never written into ---------------------------------------

NAMED = [  # (what the folder holds, the command line, the error line's text)
    ("run", ["hydra.run.dir=mine", *QUICK], "the run folder mine holds a run already; continue "
     "it with trainer.resume=mine"),
    ("run", ["hydra.run.dir=mine", "optim.lr=-1"], "holds a run already"),
    ("run", ["hydra.run.dir=mine", "model=perceptron"], "unknown option model=perceptron"),
    ("run", ["-m", "hydra.run.dir=mine", "seed=1,2", *QUICK], None),  # -m: a sweep folder
    # a sweep's folder takes only that sweep again (resumed: test_sweep_resume.py)
    ("sweep", ["-m", "hydra.sweep.dir=mine", "seed=3,4", *QUICK], "cannot resume the sweep in "
     "mine: it was run with seed=1,2 and this command has seed=3,4 (1, 2 missing)"),
    ("sweep", ["-m", "hydra.sweep.dir=mine", "optim.lr=-1"], "cannot resume the sweep in mine: "),
    ("file", ["hydra.run.dir=mine", *QUICK], "the run folder mine is not empty (notes.txt)"),
    ("file", ["hydra.run.dir=mine/..", *QUICK], "is not empty"),
    ("file", ["-m", "hydra.sweep.dir=mine", "seed=1"], "the sweep folder mine is not empty"),
]  # fmt: skip


@pytest.mark.parametrize(("holds", "args", "text"), NAMED, ids=lambda v: str(v)[:30])
def test_a_folder_the_user_named_is_not_written_into(tmp_path, finished, holds, args, text):
    if holds == "file":
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "notes.txt").write_text("mine\n")
    else:
        copy_of(finished / holds, tmp_path / "mine")
    before = snapshot(tmp_path / "mine")
    result = train_py(*args, cwd=tmp_path)
    assert snapshot(tmp_path / "mine") == before
    if text is None:  # a sweep beside a run folder: its own new folder, which is fine
        assert result.returncode == 0, result.stderr
        return
    assert_one_error_line(result, 2, text, only_line="unknown option" not in text)


def test_resume_in_place_is_the_one_way_into_a_run_folder(tmp_path, finished):
    run = copy_of(finished / "run", tmp_path / "run")
    result = train_py("trainer.resume=run", "trainer.epochs=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 3


# --- 2. one process per run folder ------------------------------------------------------------


@pytest.fixture
def held_elsewhere():
    """Holds a folder as another process would (a lock on its own open file description)."""
    fds = []

    def hold(folder):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fds.append(fd)

    yield hold
    for fd in fds:
        os.close(fd)


@pytest.mark.parametrize(
    "args",
    [["trainer.resume=run", "trainer.epochs=3"], ["trainer.resume=run", "optim.lr=-1"],
     ["hydra.run.dir=empty", *QUICK]],
    ids=["resume", "resume-refused-config", "same-run-dir"],
)  # fmt: skip
def test_a_folder_in_use_by_another_process_is_refused(tmp_path, finished, held_elsewhere, args):
    copy_of(finished / "run", tmp_path / "run")
    (tmp_path / "empty").mkdir()
    held_elsewhere(tmp_path / ("run" if "resume" in args[0] else "empty"))
    before = snapshot(tmp_path)
    result = train_py(*args, cwd=tmp_path)
    assert_one_error_line(result, 2, "is in use by another run")
    assert snapshot(tmp_path) == before


def test_a_sweep_job_whose_folder_is_in_use_fails_alone(tmp_path, held_elsewhere):
    """A job's folder held by another process (a hand resume of it, say): that job is refused
    and trains nothing there; the other jobs run. (Hydra writes a job's .hydra/ before any
    code of ours runs: with the default subdir every job folder is new, so none is shared.)"""
    (tmp_path / "s1").mkdir()  # as if a hand resume had made and held it first
    held_elsewhere(tmp_path / "s1")
    result = train_py("-m", "seed=1,2", *QUICK, "hydra.sweep.subdir=../s${seed}",
                      "hydra.sweep.dir=sweep", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("is in use by another run") == 1
    assert not {"last.pt", "model.pt", "metrics.json"} & set(os.listdir(tmp_path / "s1"))
    assert (tmp_path / "s2" / "metrics.json").exists()


LONG = ["trainer.epochs=100000", "dataset.n_train=20000", "trainer.images=false"]


@pytest.mark.slow
def test_two_processes_in_one_folder_and_a_sigkilled_holder(tmp_path):
    """A run trains; a resume of it and a run named into its folder are refused while it runs;
    once it is SIGKILLed its folder is free again (the lock ends with the process)."""
    child = start([*LONG, "hydra.run.dir=run"], tmp_path)
    wait_for_epoch(tmp_path / "run", 2, child)
    for args in (["trainer.resume=run"], ["hydra.run.dir=run", *QUICK]):
        second = subprocess.run([sys.executable, TRAIN, *args], cwd=tmp_path, text=True,
                                capture_output=True, timeout=120)  # fmt: skip
        assert_one_error_line(second, 2, "run is in use by another run")
    assert len([f for f in os.listdir(tmp_path / "run") if "tfevents" in f]) == 1
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    resumed = subprocess.run([sys.executable, TRAIN, "trainer.resume=run", "trainer.epochs=3"],
                             cwd=tmp_path, text=True, capture_output=True, timeout=120)  # fmt: skip
    assert resumed.returncode == 0 or "already" in resumed.stderr, resumed.stderr
    assert "in use" not in resumed.stderr


@pytest.mark.slow
def test_four_runs_named_into_one_folder_at_once(tmp_path):
    children = [start([*QUICK, "hydra.run.dir=same", f"seed={s}"], tmp_path) for s in range(4)]
    codes, errors = [], []
    for child in children:
        _, err = child.communicate(timeout=120)
        codes.append(child.returncode)
        errors.append(err)
    assert sorted(codes) == [0, 2, 2, 2], errors
    for err in (e for c, e in zip(codes, errors) if c == 2):
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert "in use by another run" in lines[0] or "holds a run already" in lines[0]
    files = os.listdir(tmp_path / "same")
    assert len([f for f in files if "tfevents" in f]) == 1 and "metrics.json" in files
    assert (tmp_path / "same" / "train.log").read_text().count("epoch 2/2") == 1


# --- 5. a full disk in Hydra's own writes (real tmpfs; slow) ----------------------------------


@contextlib.contextmanager
def tmpfs(folder, options):
    """A real tmpfs mounted on folder (made) for the block; skipped where mount is not allowed."""
    folder.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True, text=True)  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture
def full_disk(tmp_path):
    """A real tmpfs of 4 KiB, filled, with an empty folder of the user's."""
    with tmpfs(tmp_path / "disk", "size=4k") as disk:
        (disk / "empty").mkdir()
        (disk / "fill").write_bytes(b"\0" * 4096)
        yield disk


@pytest.mark.slow
@pytest.mark.parametrize("where", ["new/run", "empty"])
def test_a_full_disk_in_hydras_own_writes_is_one_line(tmp_path, full_disk, where):
    before = snapshot(full_disk)
    result = subprocess.run([sys.executable, TRAIN, "trainer.epochs=1", f"hydra.run.dir={where}"],
                            cwd=full_disk, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert_one_error_line(result, 2, "No space left on device; free some space")
    assert snapshot(full_disk) == before  # a folder the run made is gone; the user's is empty


@pytest.mark.slow
def test_a_disk_that_fills_during_a_sweep_is_an_error_line_each_and_the_sweep_resumes(tmp_path):
    """The disk fills part-way: the job whose event file cannot be written ends in its line, and
    Hydra's write of the next job's .hydra/ record (a traceback, exit 1: issue 34, item 7) is
    one line that says how to resume; with space again, the resume finishes the sweep."""
    with tmpfs(tmp_path / "disk", "size=120k") as disk:
        sweep = disk / "s"
        args = [sys.executable, TRAIN, "-m", "seed=1,2,3,4", "trainer.epochs=3"]
        result = subprocess.run([*args, f"hydra.sweep.dir={sweep}"], cwd=ROOT, text=True,
                                capture_output=True, timeout=300)  # fmt: skip
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.splitlines()
        assert lines and all(line.startswith("error: ") for line in lines), lines
        assert "No space left on device" in result.stderr
        assert lines[-1].endswith(f"then resume the sweep with: python scripts/train.py -m "
                                  f"sweep.resume={sweep}")  # fmt: skip
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        again = subprocess.run([sys.executable, TRAIN, "-m", f"sweep.resume={sweep}"], cwd=ROOT,
                               text=True, capture_output=True, timeout=300)  # fmt: skip
        assert again.returncode == 0, again.stderr
        rows = read_csv(sweep / "summary.csv")
        assert sorted(r["seed"] for r in rows) == ["1", "2", "3", "4"]
        assert {r["status"] for r in rows} == {"ok"}


# --- 7. exit codes and streams (real processes; slow) ------------------------------------------


def shell(command, cwd):
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@pytest.mark.slow
def test_closed_stderr_and_a_full_stdout_keep_their_exit_codes(tmp_path):
    py = f"{sys.executable} {TRAIN}"
    assert shell(f"{py} optim.lr=-1 2>&-", tmp_path).returncode == 2
    assert shell(f"{py} trainer.resume=nowhere 2>&-", tmp_path).returncode == 2
    full = shell(f"{py} trainer.epochs=3 hydra.run.dir=run > /dev/full", tmp_path)
    assert full.returncode == 0, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: cannot write to stdout"), full.stderr
    assert "epoch 3/3" in (tmp_path / "run" / "train.log").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("gap", [0.05, 0.2])
def test_a_second_ctrl_c_soon_after_the_first_exits_130(tmp_path, gap):
    child = start([*LONG, "hydra.run.dir=run"], tmp_path)
    wait_for_epoch(tmp_path / "run", 2, child)
    os.killpg(child.pid, signal.SIGINT)
    time.sleep(gap)
    os.killpg(child.pid, signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err  # not -2: killed by the signal after the message
    assert "Traceback" not in err and err.startswith("interrupted"), err


def test_a_signal_received_while_importing_is_honoured_by_launch(tmp_path, monkeypatch):
    """The entry points record SIGINT/SIGTERM while their imports run (no KeyboardInterrupt
    inside torch's C++ import) and hand them to launch(), which checks them after installing its
    own handlers: a signal in between is in one or the other, never lost (it was: exit 0)."""
    from mlrefresh.runs.cli import launch

    ran = []
    monkeypatch.setattr(sys, "argv", ["train.py", f"hydra.run.dir={tmp_path / 'run'}"])
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setenv("MLREFRESH_COMMAND", "")  # launch sets it: put back by monkeypatch
    try:
        assert launch(lambda: ran.append(1), starting=[signal.SIGINT]) == 130
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert err.getvalue() == "interrupted (SIGINT) while starting; nothing was run\n"
    assert ran == [] and not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.2, 0.5, 0.8, 1.1])
def test_ctrl_c_while_starting_says_so_and_runs_nothing(tmp_path, delay):
    """SIGINT during the imports once ended with exit 0, the sweep having run (a signal between
    the script's check and launch's handlers was lost), and once aborted the process in torch's
    C++ import ("terminate called ... KeyboardInterrupt", exit -6); issue 34, item 5."""
    child = start(["-m", "seed=1,2", "trainer.epochs=2", "hydra.sweep.dir=s"], tmp_path)
    time.sleep(delay)  # importing torch and Hydra (2-3 s on this machine)
    os.killpg(child.pid, signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert err.strip() == "interrupted (SIGINT) while starting; nothing was run", err
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_sigterm_while_starting_says_so(tmp_path):
    child = start(["trainer.epochs=2", "hydra.run.dir=run"], tmp_path)
    time.sleep(0.3)  # importing torch and Hydra
    child.terminate()
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143, err
    assert err.strip() == "interrupted (SIGTERM) while starting; nothing was run"
    assert not (tmp_path / "run").exists()


# --- 8. messages ------------------------------------------------------------------------------


@pytest.mark.parametrize("multirun", [[], ["-m", "seed=1,2"]])
def test_outputs_that_is_a_file_is_one_line(tmp_path, multirun):
    (tmp_path / "outputs").write_text("not a folder\n")
    before = snapshot(tmp_path)
    result = train_py(*multirun, *QUICK, cwd=tmp_path)
    assert_one_error_line(result, 2, "cannot create the run folder outputs/")
    assert "(Not a directory)" in result.stderr and snapshot(tmp_path) == before


def test_a_read_only_working_directory_is_one_line(tmp_path):
    with tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        for multirun in ([], ["-m", "seed=1,2"]):
            result = train_py(*multirun, *QUICK, cwd=ro)
            assert_one_error_line(result, 2, "(Read-only file system); choose another place")


@pytest.mark.parametrize("flag", [["--config-dir", "/tmp"], ["--cfg", "job"], ["--bogus"]])
def test_an_option_after_the_overrides_gets_an_error_line_first(tmp_path, flag):
    result = train_py("trainer.epochs=1", *flag, "seed=1", cwd=tmp_path)
    assert_one_error_line(result, 2, "go before the overrides", only_line=False)
    assert os.listdir(tmp_path) == []
