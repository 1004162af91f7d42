"""scripts/train.py as a user runs it: single runs, a multirun, refusals. In-process (helpers.cli:
the script as `python` runs it, minus the start-up); test_bad_input.py runs real subprocesses."""

import json
import os
import warnings

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers import TRAIN, cli

TAGS = [
    "loss/train",
    "loss/val",
    "accuracy/train",
    "accuracy/val",
    "nll/train",
    "nll/val",
    "grad_norm",
]


def run(*args):
    return cli(TRAIN, *args)


def test_default_command(tmp_path):
    result = run(f"hydra.run.dir={tmp_path}/run")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["accuracy/val"] > 0.95 and metrics["epochs"] == 20
    assert {".hydra", "model.pt", "train.log"} <= set(os.listdir(tmp_path / "run"))
    assert "epoch 20/20" in (tmp_path / "run" / "train.log").read_text()


def test_square_loss_logistic(tmp_path):
    result = run("loss=square", "model=logistic", f"hydra.run.dir={tmp_path}/run")
    assert result.returncode == 0, result.stderr
    config = (tmp_path / "run" / ".hydra" / "config.yaml").read_text()
    assert "name: square" in config


def test_multirun_writes_one_event_file_per_job_with_every_tag(tmp_path):
    result = run(
        "-m",
        "loss=square,ce",
        "model=logistic,softmax",
        "trainer.epochs=3",
        f"hydra.sweep.dir={tmp_path}/sweep",
    )
    assert result.returncode == 0, result.stderr
    jobs = sorted(
        d
        for d in os.listdir(tmp_path / "sweep")
        if os.path.isdir(tmp_path / "sweep" / d) and d[0] != "."
    )
    expected = sorted(
        f"loss={loss},model={model},trainer.epochs=3"
        for loss in ("square", "ce")
        for model in ("logistic", "softmax")
    )
    assert jobs == expected
    for job in jobs:
        acc = EventAccumulator(str(tmp_path / "sweep" / job))
        acc.Reload()
        for tag in TAGS:
            assert [e.step for e in acc.Scalars(tag)] == [1, 2, 3], (job, tag)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model=linear", "loss=ce"], "loss=ce needs a probability output"),
        (["model=logistic", "dataset=fashion_mnist"], "use model=softmax"),
        (["optim.lr=-1"], "optim.lr=-1 must be a finite number > 0"),
        (
            ["dataset=blobs", "dataset.num_classes=1", "model=softmax"],
            "num_classes=1 must be a whole number from 2",
        ),
        pytest.param(
            ["device=cuda"],
            "CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA"),
        ),
    ],
)
def test_refused_with_one_line_and_exit_code_2(tmp_path, args, message):
    result = run(*args, f"hydra.run.dir={tmp_path}/run")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "run").exists()  # nothing left behind


def test_unknown_choice_gets_hydras_message(tmp_path):
    result = run("model=perceptron", f"hydra.run.dir={tmp_path}/run")
    assert result.returncode != 0
    assert "Could not find 'model/perceptron'" in result.stderr
    assert "Traceback" not in result.stderr


def test_refused_job_in_a_sweep_does_not_stop_the_others(tmp_path):
    result = run(
        "-m",
        "model=linear,logistic",
        "loss=ce",
        "trainer.epochs=2",
        f"hydra.sweep.dir={tmp_path}/sweep",
    )
    assert result.returncode == 2
    assert result.stderr.count("error: ") == 1
    jobs = [
        d
        for d in os.listdir(tmp_path / "sweep")
        if os.path.isdir(tmp_path / "sweep" / d) and d[0] != "."
    ]
    assert jobs == ["model=logistic,loss=ce,trainer.epochs=2"]  # the swept key first


def test_divergence_exits_1_and_keeps_what_was_logged(tmp_path):
    result = run(
        "model=linear",
        "loss=square",
        "optim.lr=1e4",
        "optim.schedule=constant",
        f"hydra.run.dir={tmp_path}/run",
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: the loss became")
    assert [f for f in os.listdir(tmp_path / "run") if "tfevents" in f]


def test_hydras_errors_are_read_from_their_types_and_fields_not_their_wording():
    from hydra.errors import ConfigCompositionException, MissingConfigException
    from omegaconf.errors import ConfigAttributeError

    from mlrefresh.runs.console import hydra_error_from

    missing = MissingConfigException("reworded", missing_cfg_file="model/perceptron",
                                     options=["linear", "logistic"])  # fmt: skip
    assert hydra_error_from(missing) == (
        "error: unknown option model=perceptron; choose one of linear, logistic"
    )
    cause = ConfigAttributeError("reworded too")
    cause.full_key = "trainer.bogus"
    composed = ConfigCompositionException("anything")
    composed.__cause__ = cause
    assert hydra_error_from(composed).startswith("error: unknown key trainer.bogus; ")
    assert hydra_error_from(ConfigCompositionException("no fields")) is None  # read the text


BASIC = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}
JOBLIB = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
          "n_jobs": 2}  # fmt: skip


@pytest.mark.parametrize(
    ("threads", "launcher", "env", "expected"),
    [
        (None, BASIC, {}, 1),  # a run: one thread (launchers.py says why, measured)
        (None, BASIC, {"OMP_NUM_THREADS": "2"}, None),  # the user's: torch follows it
        (2, BASIC, {}, 2),  # trainer.threads=2
        (3, BASIC, {"OMP_NUM_THREADS": "2"}, 3),
        (None, JOBLIB, {}, 2),  # 2 jobs at once on 4 cores: 2 each
        (1, JOBLIB, {}, 1),
    ],
)
def test_threads_of_a_run(threads, launcher, env, expected):
    from mlrefresh.sweeps.launchers import run_threads

    assert run_threads(threads, launcher, 4, env) == expected


def test_threads_of_a_stack():
    from mlrefresh.sweeps.launchers import stack_threads

    assert stack_threads(None, {}) == 1  # one, as a run: it holds on a busy machine
    assert stack_threads(2, {}) == 2 and stack_threads(None, {"OMP_NUM_THREADS": "1"}) is None


@pytest.mark.parametrize(("given", "expected"), [([], 1), (["trainer.threads=2"], 2)])
def test_trainer_threads_is_used_and_the_command_puts_torchs_back(tmp_path, monkeypatch, given,
                                                                  expected):  # fmt: skip
    """The real run, watched: the thread count train(cfg) runs with, and torch's after."""
    import mlrefresh.runs.cli as cli_module

    real, seen = cli_module.train, []

    def watched(cfg, run_dir):
        seen.append(torch.get_num_threads())
        return real(cfg, run_dir=run_dir)

    monkeypatch.setattr(cli_module, "train", watched)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # what the process had: the run must not keep its own
    try:
        result = cli(TRAIN, "trainer.epochs=1", *given, f"hydra.run.dir={tmp_path}/run",
                     cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert seen == [expected] and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_a_bug_in_a_single_run_is_not_reported_as_a_sweep_callback_error(tmp_path, monkeypatch):
    """An exception that is not a UserError (a bug) in a single run: Hydra's traceback, and no
    'Callback SweepSummary.on_job_end raised MissingMandatoryValue' before it (a single run
    has no job number; issue 34, item 7)."""
    import mlrefresh.runs.cli as cli_module

    def broken(cfg, run_dir):
        raise RuntimeError("a bug in the training code")

    monkeypatch.setattr(cli_module, "train", broken)
    with warnings.catch_warnings(record=True) as warned:  # Hydra warns of a callback's error
        warnings.simplefilter("always")
        result = cli(TRAIN, "trainer.epochs=1", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode == 1
    assert "a bug in the training code" in result.stderr
    said = result.stderr + "".join(str(w.message) for w in warned)
    assert "SweepSummary" not in said and "MissingMandatoryValue" not in said, said


def test_a_bug_in_a_sweep_job_is_recorded_as_failed(tmp_path, monkeypatch):
    """The same bug in a multirun's job: its record says failed, with the exception's line
    (Hydra's basic launcher then ends the sweep with the traceback, before any summary)."""
    import mlrefresh.runs.cli as cli_module

    def broken(cfg, run_dir):
        raise RuntimeError("a bug in the training code")

    monkeypatch.setattr(cli_module, "train", broken)
    result = cli(TRAIN, "-m", "seed=1", f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    record = json.loads((tmp_path / "sweep" / ".jobs" / "0.json").read_text())
    assert record["status"] == "failed" and record["exit_code"] == 1
    assert record["error"] == "RuntimeError: a bug in the training code"
