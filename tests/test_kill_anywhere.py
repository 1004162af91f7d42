"""Kill a sweep anywhere, run the same command again: the sweep it finishes is the one that was
never stopped, every job once, no temporary file left (issue 34; docs/sweeps.md, "Stopped
sweeps").

A seeded harness, real processes and SIGKILL: each launcher's sweep is killed again and again,
each time by tests/killer/sitecustomize.py at one of the writes a sweep makes (ours: the
manifest, the job records, last.pt, model.pt, metrics.json, summary.csv, the curves over seeds
in .over_seeds/; Hydra's: the job's .hydra/*.yaml, multirun.yaml, the job folder; TensorBoard's
event files), half-way through the write or just before it, or at a random moment; after each
kill the same command runs again and is killed at the next write of the schedule. A last run
without a kill finishes the sweep, which is compared with an uninterrupted sweep: the same job
folders, each job's metrics.json and model.pt bit for bit (one thread), each epoch once in
TensorBoard, the same curves over seeds (one event file each), no `.tmp` file anywhere.
Slow tier; a few seconds a kill.

Run one launcher's battery and see each kill:
    pytest -m slow tests/test_kill_anywhere.py -k joblib -s
"""

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers import ROOT, TRAIN
from test_sweep_resume import trial_states
from test_sweeps import _cluster_down, read_csv

KILLER = os.path.join(ROOT, "tests", "killer")
GRID = ["optim.lr=0.03,0.1", "seed=1,2", "trainer.epochs=3", "trainer.images=false",
        "trainer.threads=1"]  # fmt: skip
STUDY = ["hydra/sweeper=optuna_study", "optim.lr=choice(0.03,0.1)", "seed=choice(1,2)",
         "hydra.sweeper.n_trials=5", "hydra.sweeper.storage=sqlite:///${hydra.sweep.dir}/optuna.db",
         "trainer.epochs=3", "trainer.images=false", "trainer.threads=1"]  # fmt: skip
LAUNCHERS = {
    "basic": [],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "stacked": ["hydra/launcher=stacked", "hydra.launcher.max_models=2"],
    "slurm": [
        "hydra/launcher=slurm",
        "hydra.launcher.partition=debug",
        "hydra.launcher.array_parallelism=2",
    ],  # fmt: skip
}

JOB = r".*/s/[^/.][^/]*"  # a job folder in the sweep folder `s`
# (what, the write (regex of "<event> <path>"), how many such writes to draw from, how)
WRITES = [
    ("last.pt", rf"^open {JOB}/\.last\.pt\.\w{{8}}\.tmp$", 3, "torn"),
    ("TensorBoard", rf"^open {JOB}/events\.out\.tfevents\.", 30, "torn"),
    ("last.pt in place", rf"^os\.rename {JOB}/last\.pt$", 3, "before"),
    ("model.pt", rf"^open {JOB}/\.model\.pt\.\w{{8}}\.tmp$", 1, "torn"),
    ("metrics.json", rf"^open {JOB}/\.metrics\.json\.\w{{8}}\.tmp$", 2, "torn"),
    ("job record", r"^open .*/s/\.jobs/\.\d+\.json\.\w{8}\.tmp$", 2, "torn"),
    ("a random moment", None, None, None),
    ("model.pt in place", rf"^os\.rename {JOB}/model\.pt$", 1, "before"),
    ("job folder", rf"^os\.mkdir {JOB}$", 4, "before"),
    ("job's folder record", r"^open .*/s/\.jobs/\.\d+\.folder\.\w{8}\.tmp$", 2, "torn"),
    ("Hydra's overrides.yaml", rf"^open {JOB}/\.hydra/overrides\.yaml$", 4, "torn"),
    ("Hydra's config.yaml", rf"^open {JOB}/\.hydra/config\.yaml$", 4, "torn"),
    ("Hydra's hydra.yaml", rf"^open {JOB}/\.hydra/hydra\.yaml$", 4, "torn"),
    ("summary.csv", r"^open .*/s/\.summary\.csv\.\w{8}\.tmp$", 2, "torn"),
    ("resume record", r"^open .*/s/\.jobs/\.resume\.json\.\w{8}\.tmp$", 2, "torn"),
    ("multirun.yaml", r"^open .*/s/multirun\.yaml$", 1, "torn"),
    ("manifest", r"^open .*/s/\.jobs/\.sweep\.json\.\w{8}\.tmp$", 2, "torn"),
    ("manifest in place", r"^os\.rename .*/s/\.jobs/sweep\.json$", 1, "before"),
    ("a random moment", None, None, None),
    # last, so that the draws before it are what they were: the sweep's curves over seeds, its
    # last write (sweeps/seed_curves.py), made again by every run of a finished sweep
    ("curves over seeds", r"^open .*/s/\.over_seeds/[^/]+/events\.out\.tfevents\.", 2, "torn"),
]


def schedule(name: str, writes=WRITES) -> list[dict]:
    """The kills of one launcher's battery, drawn from a seed of its own: which write of each
    kind (the n-th in the process), how much of a torn file is kept, when a random kill is."""
    rng = random.Random(f"kill-anywhere-{name}")
    kills = []
    for what, pattern, most, how in writes:
        if pattern is None:
            kills.append({"what": what, "MLREFRESH_KILL_AFTER": f"{rng.uniform(1.5, 4.0):.2f}"})
        else:
            at = f"{pattern}:{rng.randint(1, most)}:{how}"
            keep = f"{rng.uniform(0.0, 0.95):.2f}"
            kills.append({"what": what, "MLREFRESH_KILL_AT": at, "MLREFRESH_KILL_KEEP": keep})
    return kills


def sweep_once(args, sweep: Path, kill: dict | None, timeout=300):
    """The sweep's command, killed as `kill` says (None: not killed); (exit code, stderr, the
    kill it met or None)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLREFRESH_KILL")}
    log = sweep.parent / "kills.log"
    log.unlink(missing_ok=True)
    if kill is not None:
        path = os.pathsep.join(p for p in (KILLER, env.get("PYTHONPATH")) if p)
        env.update(PYTHONPATH=path, MLREFRESH_KILL_UNDER=str(sweep), MLREFRESH_KILL_LOG=str(log))
        env.update({k: v for k, v in kill.items() if k.startswith("MLREFRESH_")})
    child = subprocess.Popen([sys.executable, TRAIN, "-m", *args, f"hydra.sweep.dir={sweep}"],
                             cwd=ROOT, env=env, text=True, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    _, err = child.communicate(timeout=timeout)
    lines = log.read_text().splitlines() if log.exists() else []
    met = [line for line in lines if " KILL " in line]
    return child.returncode, err, (met[0].split(" KILL ", 1)[1] if met else None)


def kill_again_and_again(args, sweep: Path, kills: list[dict], after_kill=None) -> list[str]:
    """Each kill in turn on the same command, then the command without one; the kills met."""
    met = []
    for kill in kills:
        code, err, where = sweep_once(args, sweep, kill)
        if where is None:  # the sweep ended before that write: it must have ended well
            assert code == 0, (kill, err)
            continue
        assert code == -9, (kill, code, err)
        met.append(f"{kill['what']}: {where}")
        if after_kill is not None:
            after_kill(sweep)
        print(f"killed at {kill['what']}: {where}")
    code, err, _ = sweep_once(args, sweep, None)
    assert code == 0, err
    return met


# -- what the finished sweep must be --------------------------------------------------------------


def jobs(sweep: Path) -> dict[str, Path]:
    return {p.name: p for p in sweep.iterdir() if p.is_dir() and p.name[0] != "."}


def results(job: Path) -> tuple[dict, dict]:
    """(metrics.json without its timing, model.pt's tensors)."""
    metrics = json.loads((job / "metrics.json").read_text())
    metrics.pop("train_seconds")
    model = torch.load(job / "model.pt", weights_only=True)["state_dict"]
    return metrics, model


def assert_same_job(job: Path, reference: Path) -> None:
    (metrics, model), (expected, expected_model) = results(job), results(reference)
    assert metrics == expected, job.name  # bit for bit: JSON keeps every float exactly
    assert model.keys() == expected_model.keys()
    assert all(torch.equal(model[k], expected_model[k]) for k in model), job.name
    events = EventAccumulator(str(job), size_guidance={"scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("loss/val")] == [1, 2, 3], job.name


def assert_nothing_left(sweep: Path) -> None:
    assert sorted(p.name for p in sweep.rglob("*.tmp")) == []
    records = sorted(p.name for p in (sweep / ".jobs").iterdir())
    n = len([r for r in records if r.endswith(".folder")])
    expected = [f"{i}.{e}" for i in range(n) for e in ("folder", "json")]
    assert records == sorted([*expected, "resume.json", "sweep.json"]), records


def curves_over_seeds(sweep: Path) -> dict:
    """{configuration: {tag: [(epoch, value)]}} of the sweep's .over_seeds runs, each with one
    event file (a torn one from a killed run is gone)."""
    curves = {}
    for folder in sorted((sweep / ".over_seeds").iterdir()):
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1, folder
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        events.Reload()
        curves[folder.name] = {tag: [(e.step, e.value) for e in events.Scalars(tag)]
                               for tag in events.Tags()["scalars"]}  # fmt: skip
    return curves


def assert_same_sweep(sweep: Path, reference: Path) -> None:
    assert curves_over_seeds(sweep) == curves_over_seeds(reference)
    assert jobs(sweep).keys() == jobs(reference).keys()
    for name, job in jobs(sweep).items():
        assert_same_job(job, jobs(reference)[name])
    rows, expected = read_csv(sweep / "summary.csv"), read_csv(reference / "summary.csv")
    assert len(rows) == len(expected)
    strip = {"train_seconds", "seconds"}
    assert [{k: v for k, v in r.items() if k not in strip} for r in rows] == [
        {k: v for k, v in r.items() if k not in strip} for r in expected
    ]
    assert_nothing_left(sweep)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The grid sweep, run without a kill: (basic launcher's, stacked launcher's)."""
    made = {}
    for name in ("basic", "stacked"):
        sweep = tmp_path_factory.mktemp(f"reference-{name}") / "s"
        code, err, _ = sweep_once([*LAUNCHERS[name], *GRID], sweep, None)
        assert code == 0, err
        made[name] = sweep
    return made


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib", "stacked"])
def test_a_sweep_killed_at_every_write_finishes_as_if_never_killed(tmp_path, reference, launcher):
    sweep = tmp_path / "s"
    met = kill_again_and_again([*LAUNCHERS[launcher], *GRID], sweep, schedule(launcher))
    # the schedule's writes are met, all but a few. TensorBoard's event file is opened as its
    # writer thread flushes, so how many opens a process makes moves with the machine's timing
    # (the n-th came in one CI run and not in the next: the sweep then finished, and the job
    # kills after it found nothing left to kill); a random moment is met at the command's end
    # at the latest (killer/sitecustomize.py). Every kill that is met is checked the same.
    counted = [m for m in met if not m.startswith("TensorBoard:")]
    assert len(counted) >= len([w for w in WRITES if w[0] != "TensorBoard"]) - 2, met
    assert_same_sweep(sweep, reference["stacked" if launcher == "stacked" else "basic"])


@pytest.mark.slow
def test_an_optuna_study_killed_at_every_write_has_n_trials_each_folder_once(tmp_path, reference):
    """The study samples learning rates and seeds of the grid: each trial's results are those of
    the uninterrupted grid job with its parameters, bit for bit. A trial asked and never told
    (killed) is told failed and run again: n_trials complete at the end, each in its own folder,
    once, and a row each in summary.csv."""
    sweep = tmp_path / "s"
    writes = [w for w in WRITES if not w[0].startswith("Hydra's hydra")]  # 18 kills are enough
    met = kill_again_and_again(STUDY, sweep, schedule("optuna", writes))
    assert len(met) >= len(writes) - 3, met
    states = trial_states(sweep / "optuna.db")
    assert states.count("COMPLETE") == 5 and set(states) <= {"COMPLETE", "FAIL"}, states
    expected = jobs(reference["basic"])
    folders = jobs(sweep)
    rows = read_csv(sweep / "summary.csv")
    assert len(rows) == 5 and {r["status"] for r in rows} == {"ok"}
    assert sorted(r["folder"] for r in rows) == sorted(folders), (rows, sorted(folders))
    for name, job in folders.items():
        base = name.rsplit("-", 1)[0] if name not in expected else name  # a repeat: name-1
        assert_same_job(job, expected[base])
    assert sorted(p.name for p in sweep.rglob("*.tmp")) == []


def cancel_the_array(sweep: Path) -> None:
    """After a kill: the array's jobs still running are SIGKILLed too (as the whole node died),
    the rest cancelled, and gone from the queue before the command runs again."""
    subprocess.run(["pkill", "-KILL", "-f", f"{sweep}/.submitit"], check=False)
    arrays = sorted({d.name.split("_")[0] for d in (sweep / ".submitit").iterdir()
                     if d.name[0].isdigit()})  # fmt: skip
    if arrays:
        subprocess.run(["scancel", *arrays], check=True)
    deadline = time.monotonic() + 120
    while arrays and subprocess.run(["squeue", "-h", "-j", ",".join(arrays)], text=True,
                                    capture_output=True).stdout.strip():  # fmt: skip
        assert time.monotonic() < deadline, "the cancelled jobs did not leave the queue"
        time.sleep(0.5)


SLURM_WRITES = [WRITES[i] for i in (0, 3, 5, 11, 16)]  # last.pt, model.pt, a job's record,
# Hydra's config.yaml (in the jobs), the manifest (in the command)


@pytest.mark.slow
@pytest.mark.skipif(_cluster_down() is not None, reason=str(_cluster_down()))
def test_a_slurm_sweep_killed_at_its_writes_finishes_as_if_never_killed(tmp_path, reference):
    """A kill in a SLURM job takes the command with it (and the array is cancelled: as if the
    node and the login shell died); the same command then goes on where the sweep stopped."""
    sweep = tmp_path / "s"
    args = [*LAUNCHERS["slurm"], *GRID]
    met = kill_again_and_again(args, sweep, schedule("slurm", SLURM_WRITES), cancel_the_array)
    assert len(met) >= len(SLURM_WRITES) - 1, met
    assert_same_sweep(sweep, reference["basic"])


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib", "stacked"])
def test_a_sweep_killed_just_before_a_jobs_first_last_pt_finishes(tmp_path, reference, launcher):
    """Killed as the first job's first last.pt was put in place: the job has Hydra's record and
    an event file but nothing to resume from; the same command runs it again (joblib refused the
    resume, exit 2: issue 34, item 3)."""
    sweep = tmp_path / "s"
    kill = {
        "what": "a first last.pt",
        "MLREFRESH_KILL_AT": rf"^os\.rename {JOB}/last\.pt$:1:before",
    }
    met = kill_again_and_again([*LAUNCHERS[launcher], *GRID], sweep, [kill])
    assert len(met) == 1, met
    assert_same_sweep(sweep, reference["stacked" if launcher == "stacked" else "basic"])
