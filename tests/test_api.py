"""The installed program and the Python API (mlrefresh.run, mlrefresh.sweep: runs/api.py): the
command line in-process, on the packaged configs (pkg://mlrefresh.configs), with its folders,
files and one-line errors; importing mlrefresh is cheap."""

import logging
import os
import signal
import subprocess
import sys

import pytest
import torch

import mlrefresh
from helpers import ROOT, cli

MAIN = os.path.join(ROOT, "src", "mlrefresh", "__main__.py")


def test_a_run_returns_its_history_metrics_folder_and_model(tmp_path):
    folder = tmp_path / "run"
    r = mlrefresh.run("loss=square", "model=logistic", "trainer.epochs=3", run_dir=folder)
    assert r.run_dir == folder and (folder / "metrics.json").is_file()
    assert len(r.history["loss/val"]) == len(r.history["accuracy/train"]) == 3
    assert r.history["accuracy/val"][-1] == r.metrics["accuracy/val"]
    assert r.config["loss"]["name"] == "square"
    saved = torch.load(folder / "model.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(saved[k], v) for k, v in r.model.state_dict().items())
    x = torch.randn(5, 2)
    assert r.model(x).shape[0] == 5  # the trained model, ready to use


def test_a_run_into_a_folder_that_holds_a_run_is_refused_not_read_back(tmp_path):
    mlrefresh.run("trainer.epochs=1", run_dir=tmp_path / "run")
    with pytest.raises(mlrefresh.CommandFailed, match="holds a run already") as caught:
        mlrefresh.run("trainer.epochs=2", run_dir=tmp_path / "run")
    assert caught.value.exit_code == 2


def test_a_mistake_is_the_command_lines_error_line(tmp_path):
    with pytest.raises(mlrefresh.CommandFailed) as caught:
        mlrefresh.run("loss=bogus", run_dir=tmp_path / "never")
    assert str(caught.value) == "unknown option loss=bogus; choose one of ce, square"
    assert caught.value.exit_code == 2 and not (tmp_path / "never").exists()


def test_what_a_call_changes_in_the_process_is_put_back(tmp_path):
    handlers = list(logging.root.handlers)
    sigint, argv = signal.getsignal(signal.SIGINT), list(sys.argv)
    mlrefresh.run("trainer.epochs=1", run_dir=tmp_path / "run")
    assert logging.root.handlers == handlers and sys.argv == argv
    assert signal.getsignal(signal.SIGINT) == sigint


def test_a_sweep_returns_its_summary_rows(tmp_path):
    rows = mlrefresh.sweep("loss=square,ce", "seed=1,2", "trainer.epochs=1",
                           sweep_dir=tmp_path / "s")  # fmt: skip
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert sorted((r["loss"], r["seed"]) for r in rows) == [
        ("ce", 1), ("ce", 2), ("square", 1), ("square", 2)]  # fmt: skip
    assert all(os.path.isfile(os.path.join(r["folder"], "metrics.json")) for r in rows)
    assert all(isinstance(r["nll/val"], float) for r in rows)


def test_your_own_config_dir_composes_over_the_packaged_configs(tmp_path):
    (tmp_path / "mine" / "experiment").mkdir(parents=True)
    (tmp_path / "mine" / "experiment" / "short.yaml").write_text(
        "# @package _global_\ntrainer:\n  epochs: 2\nloss:\n  name: square\n"
    )
    r = mlrefresh.run("experiment=short", run_dir=tmp_path / "run", config_dir=tmp_path / "mine")
    assert len(r.history["loss/val"]) == 2 and r.config["loss"]["name"] == "square"


def test_python_m_mlrefresh_is_the_same_program(tmp_path):
    result = cli(MAIN, "trainer.epochs=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run,) = (tmp_path / "outputs" / "runs").glob("*/*")
    assert sorted(p.name for p in run.iterdir() if p.name[0] != ".")[-3:] == [
        "metrics.json", "model.pt", "train.log"]  # fmt: skip
    bad = cli(MAIN, "-m", "optim.lr=0.1", "trainer.resume=x", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")


def test_importing_mlrefresh_loads_neither_torch_nor_hydra():
    code = "import sys, mlrefresh; print('torch' in sys.modules, 'hydra' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_hydras_compose_api_sees_the_command_lines_config(tmp_path):
    """A notebook's (or Hydra's test runners') compose with the Hydra node resolves the
    project's folder resolvers: the package's plugin registers them (it was `Unsupported
    interpolation type unique_subdir`)."""
    code = (
        "from hydra import compose, initialize_config_module\n"
        "from omegaconf import OmegaConf\n"
        "with initialize_config_module('mlrefresh.configs', version_base='1.3'):\n"
        "    cfg = compose('train', ['loss=square'], return_hydra_config=True)\n"
        "print(cfg.loss.name, OmegaConf.select(cfg, 'hydra.run.dir'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout.split()  # fmt: skip
    assert out[0] == "square" and out[1].startswith("outputs/runs/")
    assert (tmp_path / out[1]).is_dir()  # unique_dir made it, as for a run
