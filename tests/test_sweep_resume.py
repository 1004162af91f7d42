"""A stopped sweep resumed by running its command again (sweeps/resume.py): finished jobs are
kept, interrupted ones continue from their last.pt, the rest run; a different sweep is refused
in one line before any job starts. Real processes killed with SIGKILL and SIGINT, under the
basic, joblib and stacked launchers (slow tier)."""

import contextlib
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers import ROOT, TRAIN, assert_one_error_line, cli, snapshot
from test_sweeps import _cluster_down, read_csv, run_process

QUICK = ["seed=1,2", "trainer.epochs=2", "trainer.images=false"]
METRICS = ("accuracy/val", "nll/val", "loss/val", "loss/train", "accuracy/train")


def run(*args):
    return cli(TRAIN, *args)


def finished_at(sweep) -> dict:
    """{job folder name: model.pt's mtime} of the finished jobs."""
    return {p.parent.name: p.stat().st_mtime_ns for p in sweep.glob("*/model.pt")}


def by_seed(sweep) -> dict:
    return {r["seed"]: r for r in read_csv(sweep / "summary.csv")}


def test_the_same_command_with_a_seed_more_runs_only_the_new_jobs(tmp_path):
    sweep = tmp_path / "s"
    first = run("-m", *QUICK, f"hydra.sweep.dir={sweep}")
    assert first.returncode == 0, first.stderr
    before = finished_at(sweep)
    assert len(before) == 2
    again = run("-m", "seed=1,2,3", *QUICK[1:], f"hydra.sweep.dir={sweep}")
    assert again.returncode == 0, again.stderr
    assert f"resuming the sweep in {sweep}: 2 job folder(s) from before" in again.stdout
    now = finished_at(sweep)
    assert {k: now[k] for k in before} == before  # not trained again
    assert len(now) == 3 and "3 jobs; summary" in again.stdout
    for name in before:
        assert "finished all 2 epochs already" in (sweep / name / "train.log").read_text()
    rows = by_seed(sweep)
    assert sorted(rows) == ["1", "2", "3"] and {r["status"] for r in rows.values()} == {"ok"}
    short = run("-m", f"sweep.resume={sweep}")  # the overrides saved in the folder
    assert short.returncode == 0, short.stderr
    assert finished_at(sweep) == now and "3 jobs; summary" in short.stdout


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["seed=1,3", *QUICK[1:]], "it was run with seed=1,2 and this command has seed=1,3 (2 "),
        ([*QUICK, "model=mlp"], "this command adds model=mlp, which it was not run with"),
        (QUICK[:2], "it was run with trainer.images=false, which this command leaves out"),
    ],
)
def test_another_sweep_in_the_folder_is_refused_before_any_job(tmp_path, args, why):
    sweep = tmp_path / "s"
    assert run("-m", *QUICK, f"hydra.sweep.dir={sweep}").returncode == 0
    before = snapshot(sweep)
    result = run("-m", *args, f"hydra.sweep.dir={sweep}")
    assert_one_error_line(result, 2, f"cannot resume the sweep in {sweep}: {why}")
    assert "sweep.resume=" in result.stderr
    assert snapshot(sweep) == before  # nothing started, nothing written


def test_configs_changed_since_the_sweep_ran_are_refused(tmp_path):
    """A job's saved config that the configs no longer give (here: its batch size edited, as a
    changed trainer/synthetic.yaml would make it) is named, before any job starts. The job's
    record is its last.pt (config and overrides: Hydra's .hydra/ may be half-written)."""
    sweep = tmp_path / "s"
    assert run("-m", *QUICK, f"hydra.sweep.dir={sweep}").returncode == 0
    job = sweep / "seed=2,trainer.epochs=2,trainer.images=False"
    state = torch.load(job / "last.pt", weights_only=True)
    assert state["overrides"] == ["seed=2", "trainer.epochs=2", "trainer.images=False"]
    state["config"]["trainer"]["batch_size"] = 32
    torch.save(state, job / "last.pt")
    saved = job / ".hydra" / "config.yaml"
    saved.write_text(saved.read_text().replace("batch_size: 64", "batch_size: 32"))
    before = snapshot(sweep)
    result = run("-m", *QUICK, f"hydra.sweep.dir={sweep}")
    assert_one_error_line(result, 2, "its job seed=2,trainer.epochs=2,trainer.images=False ran "
                          "with trainer.batch_size=32, and the configs now give "
                          "trainer.batch_size=64")  # fmt: skip
    assert snapshot(sweep) == before


def test_short_form_mistakes_are_one_line(tmp_path):
    (tmp_path / "plain").mkdir()
    for folder, why in ((tmp_path / "none", "no such folder"),
                        (tmp_path / "plain", "no sweep was started there")):  # fmt: skip
        result = run("-m", f"sweep.resume={folder}")
        assert_one_error_line(result, 2, f"sweep.resume={folder}: {why}")
    both = run("-m", f"sweep.resume={tmp_path}/plain", f"hydra.sweep.dir={tmp_path}/other")
    assert_one_error_line(both, 2, f"sweep.resume={tmp_path}/plain names the sweep's folder; drop")
    assert os.listdir(tmp_path / "plain") == []


def test_a_second_resume_of_a_running_sweep_is_refused(tmp_path):
    """The process that runs a sweep holds its folder (an flock, as locks.py takes it)."""
    sweep = tmp_path / "s"
    assert run("-m", *QUICK, f"hydra.sweep.dir={sweep}").returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; "
                               f"fd = os.open({str(sweep)!r}, os.O_RDONLY); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        before = finished_at(sweep)
        result = run("-m", f"sweep.resume={sweep}")
        assert_one_error_line(result, 2, f"{sweep} is in use by another run")
        assert finished_at(sweep) == before
    finally:
        holder.kill()
        holder.wait()


# -- killed part-way, in real processes --------------------------------------------------------

SIX = ["seed=1,2,3,4,5,6", "trainer.epochs=6", "dataset.n_train=30000"]


def wait_part_way(child, sweep, done=2):
    """Until `done` jobs of the sweep finished and another saved a last.pt."""
    deadline = time.monotonic() + 300

    def part_way():
        jobs = [p for p in sweep.glob("*") if p.is_dir() and p.name[0] != "."]
        ended = [j for j in jobs if (j / "model.pt").exists()]
        return len(ended) >= done and any((j / "last.pt").exists() for j in jobs if j not in ended)

    while not part_way():
        assert time.monotonic() < deadline and child.poll() is None, child.communicate()
        time.sleep(0.02)


def stop_part_way(args, sweep, signum, done=2):
    """Start the sweep, and send `signum` to its process group once `done` jobs finished and
    another saved a last.pt; returns the child's exit code and stderr."""
    child = subprocess.Popen([sys.executable, TRAIN, *args, f"hydra.sweep.dir={sweep}"],
                             cwd=ROOT, text=True, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    wait_part_way(child, sweep, done)
    os.killpg(child.pid, signum)
    _, err = child.communicate(timeout=120)
    return child.returncode, err


def check_resumed(sweep, reference, kept: dict):
    """The resumed sweep equals the uninterrupted one, the jobs that had finished were not
    trained again, and every job shows each epoch once, continuing after its saved epoch."""
    rows, expected = by_seed(sweep), by_seed(reference)
    assert sorted(rows) == sorted(expected) and {r["status"] for r in rows.values()} == {"ok"}
    for seed, row in rows.items():
        for key in METRICS:
            assert abs(float(row[key]) - float(expected[seed][key])) <= 1e-6, (seed, key)
    now = finished_at(sweep)
    assert {k: now[k] for k in kept} == kept
    resumed = 0
    for job in (p for p in sweep.iterdir() if p.is_dir() and p.name[0] != "."):
        events = EventAccumulator(str(job), size_guidance={"scalars": 0})
        events.Reload()
        assert [e.step for e in events.Scalars("loss/val")] == list(range(1, 7)), job.name
        log = (job / "train.log").read_text()
        if "resuming" in log:
            resumed += 1
            saved = int(log.split("after epoch ")[1].split("/")[0])
            after = log.split("resuming")[1].split("\n", 1)[1]  # the lines after it
            assert f"epoch {saved + 1}/6" in after and f"epoch {saved}/6" not in after
    assert resumed >= 1


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The six jobs run without interruption."""
    sweep = tmp_path_factory.mktemp("reference") / "s"
    result = run_process("-m", *SIX, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    return sweep


@pytest.mark.slow
@pytest.mark.parametrize(
    ("launcher", "signum"),
    [
        ([], signal.SIGKILL),
        ([], signal.SIGINT),
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], signal.SIGKILL),
        (["hydra/launcher=stacked", "hydra.launcher.max_models=2"], signal.SIGKILL),
    ],
    ids=["basic-SIGKILL", "basic-Ctrl-C", "joblib-SIGKILL", "stacked-SIGKILL"],
)
def test_a_sweep_stopped_part_way_finishes_as_if_never_stopped(tmp_path, reference, launcher,
                                                               signum):  # fmt: skip
    sweep = tmp_path / "s"
    code, err = stop_part_way(["-m", *launcher, *SIX], sweep, signum)
    if signum == signal.SIGINT:
        assert code == 130 and "Traceback" not in err, err
        assert f"sweep.resume={sweep}" in err
    kept = finished_at(sweep)
    assert len(kept) >= 2
    again = run_process("-m", *launcher, *SIX, f"hydra.sweep.dir={sweep}")
    assert again.returncode == 0, again.stderr
    assert "resuming the sweep in" in again.stdout + again.stderr
    check_resumed(sweep, reference, kept)
    assert torch.load(next(sweep.glob("*/last.pt")), weights_only=True)["epoch"] == 6


# -- Optuna studies kept in SQLite ---------------------------------------------------------------

STUDY = ["hparams_search=optuna", "trainer.epochs=4", "dataset.n_train=20000"]


def trial_states(db) -> list[str]:
    with contextlib.closing(sqlite3.connect(db)) as connection:
        return [s for (s,) in connection.execute("select state from trials order by number")]


@pytest.mark.slow
def test_a_study_killed_after_three_trials_completes_exactly_n_trials(tmp_path):
    sweep = tmp_path / "study"
    args = ["-m", *STUDY, "hydra.sweeper.n_trials=8"]
    stop_part_way(args, sweep, signal.SIGKILL, done=3)
    assert trial_states(sweep / "optuna.db").count("RUNNING") == 1  # the killed one
    again = run_process(*args, f"hydra.sweep.dir={sweep}")
    assert again.returncode == 0, again.stderr
    assert "Storage: sqlite:///" in again.stdout and "trials taken" in again.stdout
    states = trial_states(sweep / "optuna.db")
    assert states.count("COMPLETE") == 8 and states.count("FAIL") == 1, states  # + its retry
    assert len(read_csv(sweep / "summary.csv")) == 8
    logs = [p.read_text() for p in sweep.glob("*/train.log")]
    assert sum("resuming" in log for log in logs) == 1  # the retry went on from its last.pt


@pytest.mark.slow
def test_a_study_killed_in_its_first_trial_and_again_in_the_resume_has_n_trials(tmp_path):
    """Killed during the first trial, then the resume killed during its first: the third
    command finishes the study with n_trials folders and rows, each trial's folder once (it
    had 3 folders for n_trials=4; issue 34, item 2)."""
    sweep = tmp_path / "study"
    args = ["-m", *STUDY, "hydra.sweeper.n_trials=4"]
    stop_part_way(args, sweep, signal.SIGKILL, done=0)
    (last,) = sweep.glob("*/last.pt")
    saved = last.stat().st_mtime_ns
    child = subprocess.Popen([sys.executable, TRAIN, *args, f"hydra.sweep.dir={sweep}"],
                             cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while last.stat().st_mtime_ns == saved:  # the resumed trial saved an epoch more
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.02)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    again = run_process(*args, f"hydra.sweep.dir={sweep}")
    assert again.returncode == 0, again.stderr
    rows = read_csv(sweep / "summary.csv")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert len({r["folder"] for r in rows}) == 4
    jobs = [p for p in sweep.iterdir() if p.is_dir() and p.name[0] != "."]
    assert len(jobs) == 4, sorted(p.name for p in jobs)
    states = trial_states(sweep / "optuna.db")
    assert states.count("COMPLETE") == 4 and "RUNNING" not in states, states


def _open_at_the_barrier(url, barrier) -> str:
    from mlrefresh.sweeps.study import open_storage

    barrier.wait()
    try:
        open_storage(url)
        return "opened"
    except Exception as exc:  # noqa: BLE001 (the test reports which)
        return type(exc).__name__


def _new_database(kind, tmp_path, round_, request) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / f'{round_}.db'}"
    import psycopg

    server = request.getfixturevalue("postgres_url")
    name = f"race_{os.getpid()}_{round_}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + f"/{name}"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_processes_opening_one_new_study_database_at_once_all_open_it(tmp_path, kind, request):
    # They race to create its tables; before the retry one in four or so failed with
    # IntegrityError (alembic_version) or OperationalError (table already exists), and on
    # PostgreSQL with ProgrammingError (DuplicateTable: relation "studies" already exists).
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(4) as pool:
        for round_ in range(6):
            barrier = manager.Barrier(4)
            url = _new_database(kind, tmp_path, round_, request)
            assert pool.starmap(_open_at_the_barrier, [(url, barrier)] * 4) == ["opened"] * 4


@pytest.fixture(scope="module")
def postgres_url():
    """A real PostgreSQL server for the module's tests (tests/servers.py), or a skip that says
    why it cannot start here."""
    from servers import Unavailable, postgres_server

    try:
        with postgres_server() as url:
            yield url
    except Unavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")


def _storage_url(kind, tmp_path, request) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    if kind == "journal":
        return f"journal:{tmp_path / 'shared.log'}"
    return request.getfixturevalue("postgres_url")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql"])
def test_two_processes_on_one_study_finish_n_trials_between_them(tmp_path, kind, request):
    """Two sweep processes fill one study at once (n_jobs across processes): every trial ran
    once, in one of the two sweeps, none lost or doubled; Optuna's own API reads the study the
    sweeps wrote, and its best is what the two summaries say."""
    import optuna

    url, name = _storage_url(kind, tmp_path, request), f"shared-{kind}-{os.getpid()}"
    longer = [*STUDY[:2], "dataset.n_train=60000"]  # trials of seconds: the processes overlap
    common = ["-m", *longer, "hydra.sweeper.n_trials=6", f"hydra.sweeper.storage={url}",
              f"hydra.sweeper.study_name={name}"]  # fmt: skip
    command = [sys.executable, TRAIN, *common]
    children = [subprocess.Popen([*command, f"hydra.sweep.dir={tmp_path / n}"], cwd=ROOT,
                                 text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for n in "ab"]  # fmt: skip
    for child in children:
        _, err = child.communicate(timeout=600)
        assert child.returncode == 0, err
        assert err == "", err  # no Optuna log line or warning on stderr
    storage = url if kind != "journal" else optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "shared.log")))  # fmt: skip
    study = optuna.load_study(study_name=name, storage=storage)
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 6 and "RUNNING" not in states, states
    ran = {n: [t for t in study.trials if t.user_attrs.get("sweep") == str(tmp_path / n)]
           for n in "ab"}  # fmt: skip
    assert all(ran.values()), ran  # both took part
    rows = {n: read_csv(tmp_path / n / "summary.csv") for n in "ab"}
    for n in "ab":  # each sweep's summary: the trials it ran, once each
        assert len(rows[n]) == len([t for t in ran[n] if t.state.name == "COMPLETE"])
        assert {r["status"] for r in rows[n]} == {"ok"}
    best = min(float(r["nll/val"]) for n in "ab" for r in rows[n])
    assert study.best_value == pytest.approx(best, rel=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(_cluster_down() is not None, reason=str(_cluster_down()))
def test_a_slurm_array_cancelled_part_way_is_resumed_by_the_same_command(tmp_path, reference):
    """The array killed and cancelled once two jobs finished and a third saved a last.pt: one
    line that says how to resume; the same command then finishes the sweep as if never
    stopped."""
    sweep = tmp_path / "s"
    args = ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=debug",
            "hydra.launcher.array_parallelism=1", *SIX, f"hydra.sweep.dir={sweep}"]  # fmt: skip
    child = subprocess.Popen([sys.executable, TRAIN, *args], cwd=ROOT, text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    wait_part_way(child, sweep)
    array = next(d.name for d in (sweep / ".submitit").iterdir() if d.name[0].isdigit())
    array = array.split("_")[0]
    # the running job is SIGKILLed, as by the out-of-memory killer (a plain scancel sends
    # SIGTERM, which submitit ignores: the job trains on until SLURM's KillWait, 30 s), and the
    # rest of the array is cancelled
    subprocess.run(["pkill", "-KILL", "-f", f"{sweep}/.submitit"], check=True)
    subprocess.run(["scancel", array], check=True)
    _, err = child.communicate(timeout=300)
    assert child.returncode == 1 and "Traceback" not in err, err
    assert err.startswith("error: a SLURM job of the sweep in ") and len(err.splitlines()) == 1
    assert f"resume the sweep with: python scripts/train.py -m sweep.resume={sweep}" in err
    kept = finished_at(sweep)
    again = run_process(*args, timeout=600)
    assert again.returncode == 0, again.stderr
    check_resumed(sweep, reference, kept)


# -- what a kill leaves (issue 34, item 1) -------------------------------------------------------


def test_a_sweep_killed_while_it_wrote_its_manifest_starts_again_with_the_same_command(tmp_path):
    """SIGKILL during the atomic write of .jobs/sweep.json leaves .jobs/ with the write's
    temporary file and nothing else (no job had started): the same command is the sweep (it
    was refused: the folder is not empty)."""
    sweep = tmp_path / "s"
    (sweep / ".jobs").mkdir(parents=True)
    (sweep / ".jobs" / ".sweep.json.k2x9_abq.tmp").write_text('{"task": ["se')
    result = run("-m", *QUICK, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    assert len(read_csv(sweep / "summary.csv")) == 2
    assert not list(sweep.rglob("*.tmp"))


def test_the_temporary_files_of_killed_writes_are_removed_when_the_sweep_resumes(tmp_path):
    """Every interrupted atomic write (last.pt, model.pt, metrics.json, summary.csv, .jobs/N.json,
    .jobs/N.folder) left its `.<name>.<random>.tmp`, also after the resume finished; a user's
    own files that look alike stay."""
    sweep = tmp_path / "s"
    assert run("-m", *QUICK, f"hydra.sweep.dir={sweep}").returncode == 0
    job = next(p for p in sweep.iterdir() if p.is_dir() and p.name[0] != ".")
    ours = [
        job / ".last.pt.a1b2c3d4.tmp",
        job / ".model.pt.zz_09xyq.tmp",
        job / ".metrics.json.qwertyui.tmp",
        sweep / ".summary.csv.abcdefgh.tmp",
        sweep / ".jobs" / ".1.json.12345678.tmp",
        sweep / ".jobs" / ".0.folder.a_b_c_d_.tmp",
    ]
    users = [job / ".notes.abcdefgh.tmp", sweep / "draft.tmp", job / ".last.pt.tmp"]
    for path in ours + users:
        path.write_bytes(b"half")
    again = run("-m", *QUICK, f"hydra.sweep.dir={sweep}")
    assert again.returncode == 0, again.stderr
    assert [p for p in ours if p.exists()] == []
    assert all(p.read_bytes() == b"half" for p in users)


def test_a_job_killed_while_hydra_wrote_its_record_runs_again(tmp_path):
    """Killed while Hydra wrote a job's .hydra/overrides.yaml or config.yaml (before its first
    epoch): the half-written record was read as another config and the resume refused ("its
    job ... ran with ..."); now the job runs again and Hydra writes its record anew."""
    sweep = tmp_path / "s"
    assert run("-m", *QUICK, f"hydra.sweep.dir={sweep}").returncode == 0
    reference = by_seed(sweep)
    (job,) = sweep.glob("seed=2,*")
    for path in job.iterdir():
        if path.name != ".hydra":
            path.unlink()  # as if killed before its first epoch ...
    (sweep / ".jobs" / "1.json").unlink()
    for name, keep in (("overrides.yaml", 12), ("config.yaml", 40)):  # ... in Hydra's writes
        record = job / ".hydra" / name
        record.write_text(record.read_text()[:keep])
    again = run("-m", *QUICK, f"hydra.sweep.dir={sweep}")
    assert again.returncode == 0, again.stderr
    rows = by_seed(sweep)
    assert rows.keys() == reference.keys() and {r["status"] for r in rows.values()} == {"ok"}
    assert rows["2"]["nll/val"] == reference["2"]["nll/val"]  # the same job, run again
    assert "seed: 2" in (job / ".hydra" / "config.yaml").read_text()
