"""mlrefresh as a user installs it: the wheel (configs inside, the console script, py.typed, the
license) built from this checkout, installed with its dependencies into a fresh venv, and run
from an empty folder: `mlrefresh`, a stacked sweep, `python -m mlrefresh --help` and the Python
API, each writing under that folder's outputs/ (slow tier: the install takes a minute or two)."""

import glob
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
import torch

from helpers import ROOT


def _run(*command, cwd=None, timeout=900):
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-4000:])
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the wheel, the fresh venv's bin folder, an empty folder to work in)."""
    tmp = tmp_path_factory.mktemp("package")
    source = tmp / "source"  # built from a copy: pip builds in the tree it is given
    shutil.copytree(os.path.join(ROOT, "src"), source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))  # fmt: skip
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(ROOT, name), source / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp / "dist"), str(source))  # fmt: skip
    (wheel,) = glob.glob(str(tmp / "dist" / "mlrefresh-*.whl"))
    _run(sys.executable, "-m", "venv", str(tmp / "venv"))
    bin_ = tmp / "venv" / "bin"
    # this machine's torch first (as the Makefile does): the open range would pull a CUDA build
    torch_pin = "torch==" + ".".join(torch.__version__.split("+")[0].split(".")[:2]) + ".*"
    _run(str(bin_ / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         torch_pin, wheel)  # fmt: skip
    work = tmp / "work"
    work.mkdir()
    return wheel, bin_, work


@pytest.mark.slow
def test_the_wheel_holds_the_configs_the_typing_marker_and_the_license(installed):
    names = zipfile.ZipFile(installed[0]).namelist()
    for name in (
        "mlrefresh/configs/train.yaml",
        "mlrefresh/configs/experiment/saturation.yaml",
        "mlrefresh/configs/hydra/launcher/slurm.yaml",
        "mlrefresh/py.typed",
        "mlrefresh/__main__.py",
        "hydra_plugins/mlrefresh_plugins/stacked_launcher.py",
    ):
        assert name in names, name  # fmt: skip
    assert any(n.endswith("licenses/LICENSE") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "mlrefresh = mlrefresh.__main__:cli" in zipfile.ZipFile(installed[0]).read(
        entry_points).decode()  # fmt: skip


@pytest.mark.slow
def test_the_installed_command_runs_from_an_empty_folder(installed):
    _, bin_, work = installed
    _run(str(bin_ / "mlrefresh"), "loss=square", "model=logistic", "trainer.epochs=2", cwd=work)
    (run,) = glob.glob(str(work / "outputs" / "runs" / "*" / "*"))
    assert {"metrics.json", "model.pt", "last.pt", "train.log"} <= set(os.listdir(run))
    sweep = _run(str(bin_ / "mlrefresh"), "-m", "hydra/launcher=stacked", "seed=1,2",
                 "trainer.epochs=1", "hydra.sweep.dir=stacked", cwd=work)  # fmt: skip
    assert "2 in 1 stack(s)" in sweep.stdout + sweep.stderr
    assert (work / "stacked" / "summary.csv").is_file()
    bad = subprocess.run([str(bin_ / "mlrefresh"), "loss=bogus"], cwd=work, capture_output=True,
                         text=True)  # fmt: skip
    assert bad.returncode == 2
    assert (
        bad.stderr.splitlines()[0] == "error: unknown option loss=bogus; choose one of ce, square"
    )


@pytest.mark.slow
def test_python_m_mlrefresh_and_the_api_from_an_empty_folder(installed):
    _, bin_, work = installed
    help_ = _run(str(bin_ / "python"), "-m", "mlrefresh", "--help", cwd=work)
    assert "== Configuration groups ==" in help_.stdout and "experiment:" in help_.stdout
    code = ("import mlrefresh; r = mlrefresh.run('trainer.epochs=3', run_dir='api'); "
            "print(len(r.history['loss/val']), r.metrics['accuracy/val'] > 0.9, "
            "r.run_dir)")  # fmt: skip
    out = _run(str(bin_ / "python"), "-c", code, cwd=work).stdout.split("\n")[-2].split()
    assert out == ["3", "True", str(work / "api")]
