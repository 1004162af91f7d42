"""Runs you can trust: a folder of its own for every run, last.pt, Ctrl-C/SIGTERM, resume.

train(cfg) and the command line in-process (helpers.cli); real signals and SIGKILL to real
subprocesses (each child in its own process group, as a terminal's job; slow tier); event files
read back with EventAccumulator.
"""

import os
import random
import signal
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers import TRAIN, cli, make_cfg, snapshot, start, wait_for_epoch
from mlrefresh.errors import ResumeError
from mlrefresh.runs.checkpoint import LAST
from mlrefresh.runs.run import train

LONG = ["dataset.n_train=20000", "trainer.epochs=12"]


def weights(run_dir):
    return torch.load(os.path.join(run_dir, "model.pt"), weights_only=True)["state_dict"]


def max_difference(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


def steps(run_dir, tag="loss/val"):
    """Every step logged for `tag`, sorted: a resumed run adds an event file, and the order of
    two files made in one second by one process is the order of their names, not of time."""
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return sorted(e.step for e in acc.Scalars(tag))


def run(args, cwd):
    """In-process (helpers.cli); start() is the real process, for signals."""
    return cli(TRAIN, *args, cwd=cwd)


# --- last.pt and resume through the compose API -----------------------------------------------


def test_last_pt_holds_everything_and_loads_weights_only(tmp_path):
    train(make_cfg("trainer.epochs=3", "optim=adam"), run_dir=tmp_path)
    state = torch.load(tmp_path / LAST, weights_only=True)
    assert state["epoch"] == 3 and len(state["history"]) == 3
    assert set(state["rng"]) >= {"batch_order", "torch"}
    assert state["optimizer"]["t"] == 3 * 16  # Adam's step count: 1000 samples / 64 per step
    assert state["config"]["optim"]["name"] == "adam"
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


@pytest.mark.parametrize("optim", ["sgd", "adam"])
def test_extending_a_run_equals_running_it_whole(tmp_path, optim):
    """3 epochs, then trainer.epochs=6 on resume: the same weights as 6 epochs in one go (a
    constant learning rate, so the schedule's length does not matter)."""
    common = [f"optim={optim}", "optim.schedule=constant", "seed=3"]
    train(make_cfg(*common, "trainer.epochs=6"), run_dir=tmp_path / "whole")
    train(make_cfg(*common, "trainer.epochs=3"), run_dir=tmp_path / "part")
    m = train(make_cfg(*common, "trainer.epochs=6", f"trainer.resume={tmp_path / 'part'}"))
    assert m["epochs"] == 6
    assert max_difference(weights(tmp_path / "whole"), weights(tmp_path / "part")) <= 1e-6
    assert steps(tmp_path / "part") == [1, 2, 3, 4, 5, 6]


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    train(make_cfg("trainer.epochs=2"), run_dir=tmp_path)
    before = snapshot(tmp_path)
    m = train(make_cfg("trainer.epochs=2", f"trainer.resume={tmp_path}"))
    assert m["epochs"] == 2 and snapshot(tmp_path) == before


def test_a_run_saved_by_an_earlier_version_resumes(tmp_path):
    """A last.pt whose config lacks keys added since (an earlier version's) resumes: they take
    their defaults from the schema, and the run goes on as the same run extended."""
    cfg = ("optim.schedule=constant", "trainer.epochs=2")
    train(make_cfg(*cfg), run_dir=tmp_path / "old")
    train(make_cfg(*cfg[:1], "trainer.epochs=3"), run_dir=tmp_path / "whole")
    state = torch.load(tmp_path / "old" / LAST, weights_only=True)
    for key in ("cuda_graph", "checkpoint_every", "image_every"):  # newer than the first runs
        del state["config"]["trainer"][key]
    torch.save(state, tmp_path / "old" / LAST)
    m = train(make_cfg(*cfg[:1], "trainer.epochs=3", f"trainer.resume={tmp_path / 'old'}"))
    assert m["epochs"] == 3
    assert max_difference(weights(tmp_path / "whole"), weights(tmp_path / "old")) <= 1e-6


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.lr=0.3"], r"optim.lr=0.3 contradicts the run being resumed \(optim.lr=0.1"),
        (["loss=square"], "loss.*=square contradicts the run being resumed"),
        (["trainer.epochs=1"], "has already trained 2 epochs"),
    ],
)
def test_override_contradicting_the_saved_config_is_refused(tmp_path, overrides, message):
    train(make_cfg("trainer.epochs=2"), run_dir=tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(ResumeError, match=message):
        train(make_cfg("trainer.epochs=2", *overrides, f"trainer.resume={tmp_path}"))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "is corrupt"),
        ("garbage", "is corrupt"),
        ("other", "not a checkpoint of this project"),
        ("remove", "a run folder without last.pt"),
    ],
)
def test_missing_or_corrupt_last_pt_is_refused(tmp_path, damage, message):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    train(make_cfg("trainer.epochs=2"), run_dir=run_dir)
    last = run_dir / LAST
    if damage == "truncate":
        last.write_bytes(last.read_bytes()[:500])
    elif damage == "garbage":
        last.write_bytes(b"not a checkpoint")
    elif damage == "other":
        torch.save({"state_dict": {}}, last)
    else:
        last.unlink()
    before = snapshot(run_dir)
    with pytest.raises(ResumeError, match=message):
        train(make_cfg(f"trainer.resume={run_dir}"))
    assert snapshot(run_dir) == before


def test_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(ResumeError, match="not a run folder"):
        train(make_cfg(f"trainer.resume={tmp_path}"))


# --- the command line: in-process, and real processes for signals and SIGKILL (slow) --------


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_then_resume_equals_an_uninterrupted_run(tmp_path, signum, code):
    assert run([*LONG, "hydra.run.dir=whole"], tmp_path).returncode == 0
    child = start([*LONG, "hydra.run.dir=part"], tmp_path)
    wait_for_epoch(tmp_path / "part", 3, child)
    os.killpg(child.pid, signum)
    _, err = child.communicate(timeout=60)
    assert child.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("interrupted at epoch ")
    assert lines[0].endswith(f"resume with: python scripts/train.py trainer.resume={tmp_path}/part")
    saved = torch.load(tmp_path / "part" / LAST, weights_only=True)["epoch"]
    assert 3 <= saved < 12

    resumed = run(["trainer.resume=part"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert max_difference(weights(tmp_path / "whole"), weights(tmp_path / "part")) <= 1e-6
    assert steps(tmp_path / "part") == list(range(1, 13))  # each epoch once
    log = (tmp_path / "part" / "train.log").read_text()
    assert f"resuming part after epoch {saved}/12" in log
    assert (tmp_path / "part" / ".hydra" / "overrides.yaml").read_text().count("resume") == 0


def test_resume_refusals_on_the_command_line(tmp_path):
    for args, text in [
        (["trainer.resume=nowhere"], "trainer.resume=nowhere: no such folder"),
        (["trainer.resume=.", "-m"], "drop -m and hydra.run.dir"),
    ]:
        before = snapshot(tmp_path)
        result = run(args, tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [result.stderr.strip()]
        assert text in result.stderr and snapshot(tmp_path) == before


@pytest.mark.slow
def test_sigkill_at_any_moment_leaves_only_loadable_files(tmp_path):
    """SIGKILL cannot be caught: what is on disk must still be whole, whenever it comes."""
    rng = random.Random(0)
    for attempt in range(6):
        run_dir = tmp_path / f"run{attempt}"
        child = start(["trainer.epochs=200", "trainer.batch_size=1000", f"hydra.run.dir={run_dir}"],
                      tmp_path)  # fmt: skip
        wait_for_epoch(run_dir, 1, child)
        time.sleep(rng.uniform(0.0, 0.3))
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        for name in os.listdir(run_dir):
            if name.endswith(".pt"):
                torch.load(run_dir / name, weights_only=True)  # raises if half-written
    assert any((tmp_path / f"run{i}" / LAST).exists() for i in range(6))


@pytest.mark.slow
def test_four_runs_started_together_get_four_folders(tmp_path):
    children = [start(["trainer.epochs=2", f"seed={s}"], tmp_path) for s in range(4)]
    for child in children:
        assert child.wait(timeout=120) == 0, child.stderr.read()
    days = os.listdir(tmp_path / "outputs" / "runs")
    runs = [os.path.join(d, r) for d in days for r in os.listdir(tmp_path / "outputs/runs" / d)]
    assert len(runs) == 4
    seeds = set()
    for r in runs:
        files = os.listdir(tmp_path / "outputs/runs" / r)
        assert len([f for f in files if "tfevents" in f]) == 1 and "metrics.json" in files
        config = (tmp_path / "outputs/runs" / r / ".hydra" / "config.yaml").read_text()
        seeds.add([line for line in config.splitlines() if line.startswith("seed:")][0])
    assert len(seeds) == 4


@pytest.mark.slow
def test_two_sweeps_started_together_and_repeated_overrides_get_their_own_folders(tmp_path):
    children = [start(["-m", "seed=1,1", "trainer.epochs=2"], tmp_path) for _ in range(2)]
    for child in children:
        assert child.wait(timeout=120) == 0, child.stderr.read()
    sweeps = os.listdir(tmp_path / "outputs" / "multirun")
    assert len(sweeps) == 2
    for sweep in sweeps:
        jobs = sorted(
            d for d in os.listdir(tmp_path / "outputs/multirun" / sweep)
            if os.path.isdir(tmp_path / "outputs/multirun" / sweep / d)
            and d[0] != "."  # .jobs, .over_seeds: not jobs
        )  # fmt: skip
        assert jobs == ["seed=1,trainer.epochs=2", "seed=1,trainer.epochs=2-1"]


def test_a_sweep_jobs_folder_resumes_though_its_name_holds_commas_and_equals(tmp_path):
    """`trainer.resume=outputs/multirun/<sweep>/seed=1,trainer.epochs=2`: the = and , in the
    folder name are quoted for Hydra, not read as overrides."""
    made = run(["-m", "seed=1", "trainer.epochs=2", "hydra.sweep.dir=sweep"], tmp_path)
    assert made.returncode == 0, made.stderr
    job = tmp_path / "sweep" / "seed=1,trainer.epochs=2"
    resumed = run([f"trainer.resume={job}", "trainer.epochs=3"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert steps(job) == [1, 2, 3]
    assert torch.load(job / LAST, weights_only=True)["epoch"] == 3
