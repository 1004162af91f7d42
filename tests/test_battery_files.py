"""The battery, continued (see test_battery.py): checkpoints that load but do not belong to the
run, and damaged records and files that the summary and the figures read. In-process.
"""

import os
import pickle
import warnings

import pytest
import torch

from conftest import QUICK
from helpers import (
    FIGURES,
    SUMMARIZE,
    TRAIN,
    assert_one_error_line,
    cli,
    copy_of,
    snapshot,
    train_py,
)

# --- 3. a checkpoint that loads but does not belong to this run -------------------------------


def _set(key, value):
    def damage(state):
        state[key] = value

    return damage


def _rng(name, value):
    def damage(state):
        if value is None:
            del state["rng"][name]
        else:
            state["rng"][name] = value

    return damage


def _model_shape(state):
    weight = next(iter(state["model"]))
    state["model"][weight] = torch.zeros(3, 5)


def _velocity_shape(state):
    state["optimizer"]["velocity"][0] = torch.zeros(7)


def _other_seed(state):
    state["config"]["seed"] = 99


def _short_history(state):
    state["history"] = state["history"][:1]


CHECKPOINTS = [  # (what is wrong, how to make it so, the error line's text)
    ("another model shape", _model_shape, "its model"),
    ("a non-integer epoch", _set("epoch", 1.5), "epoch 1.5 is not a whole number from 1 to 2"),
    ("a negative epoch", _set("epoch", -5), "epoch -5 is not a whole number"),
    ("epoch 0", _set("epoch", 0), "epoch 0 is not a whole number"),
    ("an epoch past the run", _set("epoch", 9), "epoch 9 is not a whole number from 1 to 2"),
    ("epoch True", _set("epoch", True), "epoch True is not a whole number"),
    ("missing batch-order RNG", _rng("batch_order", None), "'batch_order' is missing or damaged"),
    ("garbage torch RNG", _rng("torch", torch.zeros(10)), "'torch' is missing or damaged"),
    ("RNG not a dict", _set("rng", [1, 2]), "is missing or damaged"),
    ("an empty optimizer state", _set("optimizer", {}), "optimizer state has other parts"),
    ("a momentum buffer of another shape", _velocity_shape, "optimizer state velocity 0 is (7,)"),
    ("no history", _set("history", None), "no entry for each of its 2 epochs"),
    ("a history too short", _short_history, "no entry for each of its 2 epochs"),
    ("a history of numbers", _set("history", [1, 2]), "something other than an epoch's metrics"),
    ("seconds nan", _set("seconds", float("nan")), "seconds=nan is not a time"),
    ("a config without groups", _set("config", {"seed": 0}), "its config is not a run's config"),
    ("copied from another run", _other_seed, "saved by a run with seed=99, and this folder's run "
     "has seed=0"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "damage", "text"), CHECKPOINTS, ids=[c[0] for c in CHECKPOINTS])
def test_a_checkpoint_that_does_not_belong_is_refused(tmp_path, finished, what, damage, text):
    run = copy_of(finished / "run", tmp_path / "run")
    state = torch.load(run / "last.pt", weights_only=True)
    damage(state)
    torch.save(state, run / "last.pt")
    before = snapshot(tmp_path)
    result = train_py("trainer.resume=run", "trainer.epochs=3", cwd=tmp_path)  # 1 epoch more
    assert_one_error_line(result, 2, "error: last.pt in run does not belong to this run: ")
    assert text in result.stderr, result.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("content", ["[1, 2]", "{", '{"accuracy/val": "high"}'])
def test_a_finished_runs_damaged_metrics_is_one_line_on_resume(tmp_path, finished, content):
    """Resuming a finished run whose metrics.json is damaged: one line, exit 2, the file left
    as it is (it was a TypeError traceback; issue 34, item 6)."""
    run = copy_of(finished / "run", tmp_path / "run")
    (run / "metrics.json").write_text(content)
    before = snapshot(tmp_path)
    result = train_py("trainer.resume=run", cwd=tmp_path)
    assert_one_error_line(result, 2, "error: run/metrics.json: ")
    assert "the run finished, but its results cannot be read; put its metrics.json back" in (
        result.stderr)  # fmt: skip
    assert snapshot(tmp_path) == before


MANIFESTS = [
    '{"task": [5, "seed=1,2"], "hydra": []}',
    '{"task": [null], "hydra": []}',
    '{"task": ["seed=1,2,", "trainer.epochs=((2"], "hydra": []}',
    "[1]",
    "{",
]


@pytest.mark.parametrize("content", MANIFESTS)
def test_a_damaged_sweep_manifest_is_one_line_on_resume(tmp_path, finished, content):
    """The same command on a sweep whose .jobs/sweep.json is damaged: one line, exit 2, nothing
    touched (an override list holding a number or null was Hydra's callback warning with a
    TypeError, and the sweep ran anyway; issue 34, item 6)."""
    copy_of(finished / "sweep", tmp_path / "sweep")
    (tmp_path / "sweep" / ".jobs" / "sweep.json").write_text(content)
    before = snapshot(tmp_path)
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        result = train_py("-m", *QUICK, "seed=1,2", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert_one_error_line(result, 2, "error: cannot resume the sweep in sweep: sweep/.jobs/"
                          "sweep.json is damaged")  # fmt: skip
    assert not [w for w in warned if "Callback" in str(w.message)]
    assert snapshot(tmp_path) == before


def test_a_pickle_as_last_pt_is_one_line_without_torchs_warning(tmp_path, finished):
    run = copy_of(finished / "run", tmp_path / "run")
    (run / "last.pt").write_bytes(pickle.dumps({"epoch": 1}))
    before = snapshot(tmp_path)
    result = train_py("trainer.resume=run", cwd=tmp_path)
    assert_one_error_line(result, 2, "is corrupt")
    assert snapshot(tmp_path) == before


# --- 4. damaged records and files the summary reads --------------------------------------------

RECORDS = [  # (file under the sweep or run, what it is made to hold)
    ("sweep/.jobs/0.json", "{"),
    ("sweep/.jobs/0.json", ""),
    ("sweep/.jobs/0.json", "[]"),
    ("sweep/.jobs/0.json", '{"status": 3, "exit_code": 0, "overrides": []}'),
    ("sweep/.jobs/0.json", '{"status": "ok", "exit_code": 0, "overrides": [1]}'),
    ("sweep/.jobs/0.json", '{"status": "ok", "exit_code": 0, "overrides": [], "metrics": 5}'),
    ("sweep/.jobs/0.json", b"\xff\xfe\x00"),
    ("run/metrics.json", "{"),
    ("run/metrics.json", ""),
    ("run/metrics.json", "[1, 2]"),
    ("run/metrics.json", '{"accuracy/val": "high"}'),
    ("run/.hydra/overrides.yaml", "[unclosed"),
    ("run/.hydra/overrides.yaml", "{a: 1}"),
    ("run/.hydra/overrides.yaml", "- [1, 2]"),
]


@pytest.mark.parametrize(("where", "content"), RECORDS, ids=[f"{w}:{c!r}" for w, c in RECORDS])
def test_summarize_skips_a_damaged_record_with_one_warning(tmp_path, finished, where, content):
    copy_of(finished / "sweep", tmp_path / "sweep")
    copy_of(finished / "run", tmp_path / "run")
    path = tmp_path / where
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = cli(SUMMARIZE, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: skipped {path}: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    # the three runs but the damaged one; a job whose record is damaged is read from its folder
    assert result.stdout.startswith("3 runs" if ".jobs" in where else "2 runs"), result.stdout


def test_summarize_reads_a_record_without_accuracy(tmp_path, finished):
    """A metrics.json without accuracy/val (an older version's, or edited by hand) is a row
    with '-' for it, not a KeyError traceback (issue 34, item 7)."""
    copy_of(finished / "run", tmp_path / "run")
    metrics = tmp_path / "run" / "metrics.json"
    metrics.write_text('{"nll/val": 0.5}')
    result = cli(SUMMARIZE, tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.splitlines()[0] == "1 run" and "-" in result.stdout.splitlines()[2]


@pytest.mark.parametrize("content", ["[unclosed", "{a: 1}", ""])
def test_figures_of_a_sweep_skip_a_job_with_damaged_overrides(tmp_path, finished, content):
    sweep = copy_of(finished / "sweep", tmp_path / "sweep")
    job = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name[0] != ".")[0]
    (job / ".hydra" / "overrides.yaml").write_text(content)
    result = cli(FIGURES, "--sweep", sweep, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: skipped "), result.stderr
    assert os.listdir(tmp_path / "out") == ["sweep_sweep.png"]


# --- 6. sweeper and launcher settings, checked before the first job ----------------------------

OPTUNA = ["hparams_search=optuna", "hydra.sweeper.n_trials=2", "trainer.epochs=1"]
SETTINGS = [  # (the sweep's command line, the error line's text)
    ([*OPTUNA, "hydra.sweeper.direction=sideways"], "hydra.sweeper.direction=sideways must be"),
    ([*OPTUNA, "hydra.sweeper.n_jobs=0"], "hydra.sweeper.n_jobs=0 must be a whole number from 1"),
    ([*OPTUNA, "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials=0 must be a whole number"),
    ([*OPTUNA, "optim.lr=interval(3, 0.1)"], "search space of optim.lr: interval(3.0, 0.1) is"),
    ([*OPTUNA, "optim.lr=tag(log,interval(-1,1))"], "a log interval must be above 0, not from -1"),
    ([*OPTUNA, "optim.lr=choice("], "cannot parse an override"),
    ([*OPTUNA, "hydra.sweeper.objective=accuracy/val"], "hydra.sweeper.objective=accuracy/val is "
     "studied with hydra.sweeper.direction=maximize, not minimize"),
    ([*OPTUNA, "hydra.sweeper.objective=acc"], "hydra.sweeper.objective=acc must be one of"),
    ([*OPTUNA, "hydra.sweeper.storage=sqlite:////no/such/folder/x.db"], "hydra.sweeper.storage="
     "sqlite:////no/such/folder/x.db cannot be opened ("),
    ([*OPTUNA, "hydra.sweeper.storage=journal:/no/such/folder/x.log"], "hydra.sweeper.storage="
     "journal:/no/such/folder/x.log: the folder /no/such/folder does not exist"),
    # a search-space key the config does not have, in the params (an hparams_search file) and
    # on the command line: refused before the study is created (it was Hydra's multi-line
    # "Could not override 'bogus'", exit 1, after the study was made)
    ([*OPTUNA, "+hydra.sweeper.params.bogus='choice(1,2)'"], "unknown key bogus in the search "
     "space (hydra.sweeper.params or the command line); check the spelling"),
    ([*OPTUNA, "optim.bogus=interval(0.1,0.2)"], "unknown key optim.bogus in the search space"),
    ([*OPTUNA, "+hydra.sweeper.sampler.bogus=1"], "hydra.sweeper.sampler "
     "(optuna.samplers.TPESampler) cannot be made: "),
    ([*OPTUNA, "hydra/sweeper/sampler=grid"], "the grid sampler needs a list of values for "
     "optim.lr, not an interval"),
    ([*OPTUNA, "hydra/sweeper/sampler=grid", "optim.lr=choice(0.1,0.3)"], "the grid sampler "
     "walks the grid of the search space alone; custom_search_space"),
    ([*OPTUNA, "hydra.sweeper.custom_search_space=no.such.fn"], "hydra.sweeper."
     "custom_search_space=no.such.fn is not a function that can be imported"),
    (["hydra/launcher=joblib", "hydra.launcher.prefer=bogus"], "hydra.launcher.prefer=bogus must"),
    (["hydra/launcher=joblib", "hydra.launcher.backend=bogus"], "hydra.launcher.backend=bogus"),
    (["hydra/launcher=joblib", "+hydra.launcher.bogus=1"], "unknown key hydra.launcher.bogus; "
     "the joblib launcher has only n_jobs"),
    (["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=-1"], "timeout_min=-1 must be"),
    (["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=0"], "cpus_per_task=0 must"),
    (["hydra/launcher=submitit_local", "+hydra.launcher.bogus=1"], "unknown key hydra.launcher."
     "bogus; the submitit launcher has only"),
    (["hydra/launcher=stacked", "+hydra.launcher.bogus=1"], "unknown key hydra.launcher.bogus; "
     "the stacked launcher has only max_models"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "text"), SETTINGS, ids=[" ".join(a[-1:]) for a, _ in SETTINGS])
def test_sweep_settings_that_cannot_work_are_refused_before_any_job(tmp_path, args, text):
    result = cli(TRAIN, "-m", *args, *[] if "optuna" in args[0] else ["seed=1,2"], cwd=tmp_path)
    assert_one_error_line(result, 2, text, only_line="cannot parse" not in text)
    assert os.listdir(tmp_path) == []  # no sweep folder, no job


def test_the_search_space_in_the_config_is_checked_too():
    from mlrefresh.errors import ConfigError
    from mlrefresh.sweeps.settings import check_sweeper

    study = {
        "_target_": "x.OptunaSearch",
        "direction": "maximize",
        "n_trials": 2,
        "n_jobs": 1,
        "objective": "accuracy/val",
    }
    check_sweeper({**study, "params": {"optim.lr": "tag(log, interval(0.001, 1))"}})
    with pytest.raises(ConfigError, match=r"optim.lr: interval\(1.0, 0.001\) is empty"):
        check_sweeper({**study, "params": {"optim.lr": "interval(1.0, 0.001)"}})
