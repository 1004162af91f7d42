"""What many test files share: paths, one Hydra composition per config, the scripts run
in-process (fast) or as real subprocesses (where the process itself is the subject), and the
checks on what a refused run prints and leaves behind.

Example:
    >>> cfg = compose("model=softmax", "trainer.epochs=1")
    >>> (cfg.model.name, cfg.trainer.epochs)
    ('softmax', 1)
    >>> result = cli(TRAIN, "optim.lr=-1", "hydra.run.dir=/nonexistent/x")  # doctest: +SKIP
    >>> result.returncode, result.stderr  # doctest: +SKIP
    (2, 'error: optim.lr=-1 must be a finite number > 0, e.g. optim.lr=0.1\\n')
"""

import contextlib
import copy
import hashlib
import io
import logging
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.singleton import Singleton

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")
TRAIN = os.path.join(ROOT, "scripts", "train.py")
FIGURES = os.path.join(ROOT, "scripts", "figures.py")
SUMMARIZE = os.path.join(ROOT, "scripts", "summarize.py")
CLAIMS = os.path.join(ROOT, "scripts", "claims.py")

_composed: dict[tuple[str, ...], object] = {}


def compose(*overrides: str):
    """The config `python scripts/train.py <overrides>` would run, without its hydra: node.
    Hydra is initialised once per session and each composition is kept: a copy is returned."""
    key = tuple(overrides)
    if key not in _composed:
        hydra = GlobalHydra.instance()
        if not hydra.is_initialized():
            initialize_config_dir(CONFIGS, version_base="1.3")  # stays initialised
        _composed[key] = hydra_compose("train", overrides=list(overrides))
    return copy.deepcopy(_composed[key])


def make_cfg(*overrides: str):
    """compose() on the CPU: what most tests train."""
    return compose("device=cpu", *overrides)


def run_script(script, *args, cwd=ROOT, python=(sys.executable,), env=None, timeout=300):
    """`python <script> <args>` as a real subprocess: CompletedProcess with text output."""
    return subprocess.run([*python, script, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)  # fmt: skip


@dataclass
class Result:
    """What a script run in-process gave: as subprocess.CompletedProcess, for the same asserts."""

    returncode: int
    stdout: str
    stderr: str


class _Stream(io.StringIO):
    """A captured stdout/stderr that says it is not a terminal and has no file descriptor."""

    def isatty(self):
        return False


@contextlib.contextmanager
def _process_state(cwd, argv, env):
    """What a script may change in its process, put back afterwards: cwd, argv, environment,
    signal handlers, torch's threads, logging handlers, Hydra's singletons, excepthooks."""
    saved_env = dict(os.environ)
    saved = (os.getcwd(), sys.argv, sys.stdout, sys.stderr, torch.get_num_threads(),
             threading.excepthook, list(logging.root.handlers), logging.root.level,
             {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)},
             copy.deepcopy(Singleton.get_state()))  # fmt: skip
    GlobalHydra.instance().clear()  # compose() keeps it initialised; a script initialises its own
    os.chdir(cwd)
    sys.argv = list(argv)
    os.environ.update(env or {})
    try:
        yield
    finally:
        for handler in logging.root.handlers:
            if handler not in saved[6]:
                handler.close()
        os.chdir(saved[0])
        sys.argv, sys.stdout, sys.stderr = saved[1:4]
        torch.set_num_threads(saved[4])
        threading.excepthook = saved[5]
        logging.root.handlers[:] = saved[6]
        logging.root.setLevel(saved[7])
        for signum, handler in saved[8].items():
            signal.signal(signum, handler)
        Singleton.set_state(saved[9])
        os.environ.clear()
        os.environ.update(saved_env)


def cli(script, *args, cwd=ROOT, env=None) -> Result:
    """`python <script> <args>` run in this process, as `python` would run it (`__main__`,
    sys.argv, its exit code from SystemExit, a traceback and 1 for an exception that escapes):
    the same code path as a subprocess minus the interpreter's start-up."""
    out, err = _Stream(), _Stream()
    code = 0
    with _process_state(cwd, [script, *map(str, args)], env):
        sys.stdout, sys.stderr = out, err
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=err)
        except BaseException:  # what the interpreter would print before exiting with 1
            traceback.print_exc(file=err)
            code = 1
    return Result(code, out.getvalue(), err.getvalue())


def train_py(*args, cwd=ROOT, env=None) -> Result:
    """scripts/train.py in-process (cli)."""
    return cli(TRAIN, *args, cwd=cwd, env=env)


def start(args, cwd, stdout=subprocess.DEVNULL):
    """scripts/train.py as a real child in a new session (its own process group, as a shell
    starts a job), for signals: Popen with stderr piped."""
    return subprocess.Popen([sys.executable, TRAIN, *map(str, args)], cwd=cwd,
                            start_new_session=True, stdout=stdout, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def wait_for_epoch(run_dir, epoch, child, timeout=120):
    """Until run_dir/train.log says `epoch <epoch>/`; fails if the child ends first."""
    log = Path(run_dir) / "train.log"
    deadline = time.monotonic() + timeout
    while not (log.exists() and f"epoch {epoch}/" in log.read_text()):
        assert child.poll() is None, child.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)


def copy_of(src, dst):
    """cp -a src dst; dst."""
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    return dst


def snapshot(folder):
    """{relative path: content hash, or 'dir'} of everything under folder."""
    tree = {}
    for here, dirs, files in os.walk(folder):
        for d in dirs:
            tree[os.path.relpath(os.path.join(here, d), folder)] = "dir"
        for f in files:
            path = os.path.join(here, f)
            with open(path, "rb") as fh:
                tree[os.path.relpath(path, folder)] = hashlib.md5(fh.read()).hexdigest()
    return tree


def assert_one_error_line(result, code, text, only_line=True):
    """Exit `code`, a first stderr line `error: ...` holding `text` (and nothing else when
    only_line), and no traceback anywhere."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error: "), result.stderr
    assert text in lines[0], lines[0]
    if only_line:
        assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
