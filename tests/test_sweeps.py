"""Sweeps as a user runs them: the summary, every launcher, Optuna, and a real SLURM cluster.

One sweep mixes an ok job, a diverged one (lr 1e4 with the squared error on a linear model) and
a refused one (lr -1): whatever the launcher, the console names the failures, summary.csv has
one row per job with its status, and the sweep exits with the worst job's code (2).

The basic launcher and the scripts run in-process (helpers.cli); the parallel launchers, Optuna,
SLURM, TensorBoard's server and Ctrl-C run as real processes (slow tier).
"""

import csv
import functools
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, SUMMARIZE, TRAIN, cli, run_script

MIXED = ["model=linear", "loss=square", "optim.schedule=constant", "optim.lr=0.1,1e4,-1",
         "trainer.epochs=3"]  # fmt: skip
STATUS = {"0.1": "ok", "10000.0": "diverged", "-1": "refused"}


def run(*args, cwd=ROOT, script=TRAIN):
    """The script in-process (helpers.cli)."""
    return cli(script, *args, cwd=cwd)


def run_process(*args, cwd=ROOT, python=(sys.executable,), timeout=300):
    """scripts/train.py as a real process: launchers that start their own processes."""
    return run_script(TRAIN, *args, cwd=cwd, python=python, timeout=timeout)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_mixed(result, sweep):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    rows = read_csv(sweep / "summary.csv")
    assert {r["optim.lr"]: r["status"] for r in rows} == STATUS
    ok = next(r for r in rows if r["status"] == "ok")
    assert float(ok["accuracy/val"]) > 0.9 and ok["device"] == "cpu"
    assert os.path.exists(sweep / ok["folder"] / "metrics.json")
    refused = next(r for r in rows if r["status"] == "refused")
    assert refused["folder"] == "" and "optim.lr=-1" in refused["error"]
    assert "3 jobs, 2 failed" in result.stdout
    table = result.stdout[result.stdout.index("optim.lr  n") :].splitlines()
    assert table[1].startswith("0.1 ") and "(1 diverged)" in table[2] + table[3]
    return rows


def test_basic_launcher_summary_and_exit_code(tmp_path):
    result = run("-m", *MIXED, f"hydra.sweep.dir={tmp_path}/sweep")
    check_mixed(result, tmp_path / "sweep")
    # the jobs ran in this process: each error line once, when it happened
    assert result.stderr.count("error: optim.lr=-1") == 1
    assert result.stderr.count("error: the loss became") == 1


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_parallel_launchers_report_failed_jobs_like_basic(tmp_path, launcher):
    sweep = tmp_path / "sweep"
    result = run_process("-m", f"hydra/launcher={launcher}", *MIXED, f"hydra.sweep.dir={sweep}")
    check_mixed(result, sweep)
    # on the console once: joblib's workers write to it; submitit's to log files, so the
    # summary names the failed jobs again at the end
    assert result.stderr.count("error: optim.lr=-1") == 1, result.stderr
    listed = "refused: error: optim.lr=-1" in result.stderr
    assert listed == (launcher == "submitit_local")
    ok = next(r for r in read_csv(sweep / "summary.csv") if r["status"] == "ok")
    log = (sweep / ok["folder"] / "train.log").read_text()
    cores = len(os.sched_getaffinity(0))
    if cores > 1:  # jobs at once = cores (joblib's n_jobs=-1; submitit starts them all)
        assert f"1 thread(s) per job ({cores} cores)" in log


@pytest.mark.slow
def test_optuna_study_minimises_the_val_nll_and_records_every_trial(tmp_path):
    sweep = tmp_path / "study"
    args = ["hydra.sweeper.n_trials=3", "trainer.epochs=2", f"hydra.sweep.dir={sweep}"]
    result = run_process("-m", "hparams_search=optuna", *args)
    assert result.returncode == 0, result.stderr
    assert "Directions: ['minimize']; objective: nll/val" in result.stdout
    rows = read_csv(sweep / "summary.csv")
    assert len(rows) == 3 and {r["status"] for r in rows} == {"ok"}
    best = min(float(r["nll/val"]) for r in rows)
    results = (sweep / "optimization_results.yaml").read_text()
    assert f"best_value: {best}" in results
    for r in rows:  # the momentum is sampled for SGD trials only
        assert (r.get("optim.momentum", "") != "") == (r["optim"] == "sgd")


@pytest.mark.slow
def test_optuna_study_without_a_success_ends_in_one_line(tmp_path):
    sweep = tmp_path / "study"
    args = ["hydra.sweeper.n_trials=2", "optim.lr=1e7", f"hydra.sweep.dir={sweep}"]
    result = run_process("-m", "hparams_search=optuna", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "float-castable" not in result.stdout
    assert "error: no trial of the study succeeded (2 failed)" in result.stderr
    assert "a trial failed (refused or diverged" in result.stdout
    assert [r["status"] for r in read_csv(sweep / "summary.csv")] == ["refused", "refused"]


def test_optuna_study_stops_in_one_line_past_its_max_failure_rate(tmp_path):
    sweep = tmp_path / "study"
    args = ["hydra.sweeper.n_trials=3", "hydra.sweeper.max_failure_rate=0", "optim.lr=1e7",
            "trainer.epochs=1", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    result = run("-m", "hparams_search=optuna", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        "error: 1 of 1 trials of a batch failed, more than hydra.sweeper.max_failure_rate=0.0 "
        "allows; see their error lines, or raise it (1.0: the study goes on)"
    )
    assert [r["status"] for r in read_csv(sweep / "summary.csv")] == ["refused"]  # no more
    import optuna

    study = optuna.load_study(study_name="mlrefresh", storage=f"sqlite:///{sweep}/optuna.db")
    assert [t.state.name for t in study.trials] == ["FAIL"]  # told to Optuna as failed


def test_a_damaged_study_database_is_one_line(tmp_path):
    sweep = tmp_path / "study"
    args = ["-m", "hparams_search=optuna", "trainer.epochs=1", f"hydra.sweep.dir={sweep}"]
    assert run(*args, "hydra.sweeper.n_trials=1").returncode == 0
    with open(sweep / "optuna.db", "r+b") as f:  # truncated: a disk that filled, a bad copy
        f.truncate(5000)
    result = run(*args, "hydra.sweeper.n_trials=2")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == [
        f"error: the study's storage sqlite:///{sweep}/optuna.db cannot be read "
        "((sqlite3.DatabaseError) database disk image is malformed); move the damaged file "
        "away to start the study anew, or give another hydra.sweeper.storage"
    ]


def test_a_grid_study_from_the_command_line(tmp_path):
    sweep = tmp_path / "grid"
    grid = ["hydra/sweeper/sampler=grid", "hydra.sweeper.custom_search_space=null", "optim=sgd",
            "optim.weight_decay=0.0", "optim.lr=choice(0.1,0.3)", "seed=1,2"]  # fmt: skip
    result = run(
        "-m", "hparams_search=optuna", *grid, "trainer.epochs=1", f"hydra.sweep.dir={sweep}"
    )
    assert result.returncode == 0, result.stderr
    rows = read_csv(sweep / "summary.csv")
    assert sorted((r["optim.lr"], r["seed"]) for r in rows) == [
        ("0.1", "1"), ("0.1", "2"), ("0.3", "1"), ("0.3", "2")]  # fmt: skip


def test_a_grid_study_walks_its_grid_once():
    """The grid sampler's study: n_trials at most the grid's size, each point once."""
    import optuna

    from mlrefresh.sweeps.space import study_space
    from mlrefresh.sweeps.study import ask, make_sampler, open_storage, open_study, tell

    grid = {"_target_": "optuna.samplers.GridSampler", "seed": 0}
    params = {"optim": "choice(sgd, adam)", "seed": "range(1, 4)"}
    space, fixed, n_trials = study_space(params, ["trainer.epochs=2"], grid, 20)
    assert (n_trials, fixed) == (6, {"trainer.epochs": "2"})
    storage = open_storage(None)
    study = open_study(storage, "g", ["minimize"], "/nowhere")
    study.sampler = make_sampler(grid, space)
    points = []
    while trials := ask(study, space, n_trials, 4):
        for t in trials:
            points.append((t.params["optim"], t.params["seed"]))
            tell(study, t, 0.0)
    assert sorted(points) == sorted((o, s) for o in ("sgd", "adam") for s in (1, 2, 3))
    assert isinstance(study.sampler, optuna.samplers.GridSampler)


@pytest.mark.slow
def test_optuna_without_optuna_says_how_to_install_it(tmp_path):
    hide = ("import runpy, sys; sys.modules['optuna'] = None; "
            f"sys.argv = sys.argv[1:]; runpy.run_path({TRAIN!r}, run_name='__main__')")  # fmt: skip
    result = run_process("-m", "hparams_search=optuna", python=(sys.executable, "-c", hide),
                         cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        "error: hparams_search=optuna needs Optuna, which is not installed; run pip install -e "
        '".[sweep]" (or make train)'
    )
    assert os.listdir(tmp_path) == []


def test_summarize_groups_runs_by_their_resolved_configuration(tmp_path):
    """The default run and `dataset=blobs` spelled out are one configuration, and so are
    `loss=square model=logistic` with and without it: two rows of two runs, not four."""
    for i, extra in enumerate([[], ["dataset=blobs"], ["loss=square", "model=logistic"],
                               ["loss=square", "model=logistic", "dataset=blobs"]]):  # fmt: skip
        made = run(*extra, "trainer.epochs=2", f"seed={i}", f"hydra.run.dir={tmp_path}/r{i}")
        assert made.returncode == 0, made.stderr
    result = run(str(tmp_path), script=SUMMARIZE)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "4 runs"
    assert lines[1].split() == ["loss", "n", "accuracy/val", "%", "nll/val"]
    assert sorted(line.split()[:2] for line in lines[2:]) == [["ce", "2"], ["square", "2"]]
    one = run(str(tmp_path / "r0"), script=SUMMARIZE)
    assert one.stdout.splitlines()[0] == "1 run"


def test_summarize_counts_seeds_not_runs(tmp_path):
    """Three `make train` runs are one seed run three times, not three seeds (issue 33)."""
    for i, seed in enumerate([0, 0, 0, 1]):
        made = run(f"seed={seed}", "trainer.epochs=2", f"hydra.run.dir={tmp_path}/r{i}")
        assert made.returncode == 0, made.stderr
    same = run(*(str(tmp_path / f"r{i}") for i in range(3)), script=SUMMARIZE)
    assert same.stdout.splitlines()[2].split()[:4] == ["3", "runs,", "1", "seed"], same.stdout
    both = run(str(tmp_path), script=SUMMARIZE)
    assert both.stdout.splitlines()[2].split()[:4] == ["4", "runs,", "2", "seeds"], both.stdout


def test_summarize_script(tmp_path):
    sweep = tmp_path / "sweep"
    made = run("-m", "seed=1,2", "optim.lr=0.1,-1", "trainer.epochs=2", f"hydra.sweep.dir={sweep}")
    assert made.returncode == 2
    single = run("trainer.epochs=2", f"hydra.run.dir={tmp_path}/runs/one")
    assert single.returncode == 0, single.stderr
    result = run(str(tmp_path), "--csv", str(tmp_path / "all.csv"), script=SUMMARIZE)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"5 runs; summary: {tmp_path / 'all.csv'}"
    assert lines[1].split() == ["optim.lr", "n", "accuracy/val", "%", "nll/val"]
    lr01 = next(line for line in lines if line.startswith("0.1 "))
    assert lr01.split()[1] == "3" and "±" in lr01  # two seeds, and the run alone (lr 0.1 too)
    assert "0 (2 refused)" in lines[-1]
    rows = read_csv(tmp_path / "all.csv")
    assert sorted(r["status"] for r in rows) == ["ok", "ok", "ok", "refused", "refused"]
    assert os.path.relpath(tmp_path / "runs" / "one", ROOT) in [r["folder"] for r in rows]
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in ([str(empty)], [str(tmp_path / "missing")], [str(tmp_path), "--csv", "no/x.csv"]):
        result = run(*args, script=SUMMARIZE)
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
        assert result.stderr.startswith("error: ")


# -- a real one-node SLURM cluster (scripts/slurm_cluster.sh; .ci/run starts it) ---------------


@functools.cache  # sinfo waits ~18 s for a controller that is down; ask once
def _cluster_down() -> str | None:
    """Why the cluster cannot be used here, or None."""
    if shutil.which("sinfo") is None:
        return "SLURM is not installed (apt-get install slurm-wlm munge; scripts/slurm_cluster.sh)"
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if state.returncode != 0 or not {"idle", "mixed"} & set(state.stdout.split()):
        return f"no idle SLURM node (sudo scripts/slurm_cluster.sh start): {state.stderr.strip()}"
    return None


def readme_command(marker: str) -> list[str]:
    """The command in a code block of README.md or docs/*.md that starts with `marker`."""
    pages = [os.path.join(ROOT, "README.md"), *glob.glob(os.path.join(ROOT, "docs", "*.md"))]
    lines = (line for page in pages for line in Path(page).read_text().splitlines())
    line = next(line for line in lines if line.startswith(marker))
    return line.split("#")[0].split()[2:]  # after `python scripts/train.py`


@pytest.mark.slow
@pytest.mark.skipif(_cluster_down() is not None, reason=str(_cluster_down()))
def test_readme_slurm_sweep_on_a_real_cluster(tmp_path):
    args = readme_command("python scripts/train.py -m hydra/launcher=slurm")
    result = run_process(*args, f"hydra.sweep.dir={tmp_path}/sweep", cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = read_csv(tmp_path / "sweep" / "summary.csv")
    assert {r["loss"]: r["status"] for r in rows} == {"square": "ok", "ce": "ok"}
    accounting = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True)
    if "accounting_storage/slurmdbd" in accounting.stdout:  # sacct answers: no warnings
        assert "sacct" not in result.stdout + result.stderr


# -- TensorBoard's HParams table, from a real TensorBoard over HTTP ---------------------------


def _tensorboard_answers(command, paths, timeout=90):
    """Start TensorBoard by `command` (plus --port), and return its JSON answers to `paths`
    (GET, or POST for the HParams experiment) once it has read the runs (every answer holds
    something; the experiment, its hparamInfos); then stop it."""
    import json
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([*command, "--host", "127.0.0.1", "--port", str(port),
                               "--load_fast=false"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def ask(path):
        url = f"http://127.0.0.1:{port}{path}"
        post = path.endswith("/experiment")
        data = json.dumps({"experimentName": ""}).encode() if post else None
        request = urllib.request.Request(url, data=data,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.load(answer)

    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                answers = {path: ask(path) for path in paths}
                if all(a.get("hparamInfos") if isinstance(a, dict) else a
                       for a in answers.values()):  # fmt: skip
                    return answers
            except OSError:  # not listening yet
                pass
            time.sleep(0.5)
        raise AssertionError(f"TensorBoard did not answer {paths}")
    finally:
        server.kill()
        server.wait()


def _hparams_table(logdir, timeout=90):
    """What TensorBoard's HParams dashboard is given: (name, differs) per key, in its order,
    and the metric tags in their order."""
    tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    path = "/data/plugin/hparams/experiment"
    experiment = _tensorboard_answers([tensorboard, "--logdir", str(logdir)], [path],
                                      timeout)[path]  # fmt: skip
    metrics = [m["name"]["tag"] for m in experiment.get("metricInfos", [])]
    return [(h["name"], h.get("differs", False)) for h in experiment["hparamInfos"]], metrics


@pytest.mark.slow
def test_make_tensorboard_opens_the_latest_sweep_with_its_own_table_and_no_dot_run(tmp_path):
    """A week's outputs/: TensorBoard on all of it ticked no run above 40, took one sweep's
    HParams table for all, and showed each sweep folder as a run "." (issue 33, item 1). The
    opener shows the latest sweep: its jobs as the runs (no "."), named and tabled with its
    swept key first, and its curves over seeds; an earlier sweep opened by name has its own
    table."""
    common = ["trainer.epochs=1", "trainer.images=false", "dataset.n_train=200"]
    for where, sweep in (("multirun/a", "optim.lr=0.1,0.3"), ("multirun/b", "seed=1,2,3")):
        made = run("-m", sweep, *common, f"hydra.sweep.dir={tmp_path}/outputs/{where}")
        assert made.returncode == 0, made.stderr
    assert not list((tmp_path / "outputs").glob("multirun/*/events.out.tfevents.*"))
    opener = [sys.executable, os.path.join(ROOT, "scripts", "open_tensorboard.py"),
              "--outputs", str(tmp_path / "outputs")]  # fmt: skip
    latest = _tensorboard_answers(opener, ["/data/runs", "/data/plugin/hparams/experiment"])
    runs = sorted(latest["/data/runs"])
    assert runs == [".over_seeds/all"] + [  # its swept key first; and its mean over seeds
        f"seed={s},dataset.n_train=200,trainer.epochs=1,trainer.images=False" for s in (1, 2, 3)
    ]
    infos = latest["/data/plugin/hparams/experiment"]["hparamInfos"]
    assert infos[0]["name"] == "seed" and infos[0].get("differs")
    earlier = _tensorboard_answers([*opener, str(tmp_path / "outputs" / "multirun" / "a")],
                                   ["/data/plugin/hparams/experiment"])  # fmt: skip
    infos = earlier["/data/plugin/hparams/experiment"]["hparamInfos"]
    assert infos[0]["name"] == "optim.lr" and infos[0].get("differs")


@pytest.mark.slow
def test_hparams_table_lists_the_swept_keys_first_and_every_runs_keys_and_nll_early(tmp_path):
    sweep = tmp_path / "sweep"
    result = run("-m", "dataset=blobs,xor", "optim.lr=0.1,0.3", "trainer.epochs=2",
                 "trainer.images=false", f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    table, metrics = _hparams_table(sweep)
    names = [name for name, _ in table]
    differ = [name for name, differs in table if differs]
    # swept first (dataset.std differs too: 1.0 for blobs, 0.5 for xor), then the rest
    assert set(names[:3]) == {"dataset.name", "optim.lr", "dataset.std"} == set(differ)
    assert "dataset.num_classes" in names  # blobs has it, xor does not: still a column
    assert "device.used" in names
    assert metrics[:3] == ["accuracy/val", "nll/val", "loss/val"]  # not diag/* first
    assert "diag/dead" in metrics


@pytest.mark.slow
@pytest.mark.skipif(_cluster_down() is not None, reason=str(_cluster_down()))
def test_preempted_slurm_job_is_requeued_and_resumes_from_last_pt(tmp_path):
    """submitit's preemption signal (USR2): the job saves nothing new, submitit requeues it,
    and the requeued job finds its own folder and goes on from last.pt, each epoch logged
    once. (SLURM holds a requeued job for two minutes; the test lets it start at once.)"""
    import time

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=debug", "trainer.epochs=100",
            "dataset.n_train=20000", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    child = subprocess.Popen([sys.executable, TRAIN, *args], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip

    def wait_for(condition, timeout=180):
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline and child.poll() is None, child.communicate()
            time.sleep(0.2)

    folder = sweep / "dataset.n_train=20000,trainer.epochs=100"
    wait_for(lambda: (folder / "last.pt").exists())
    job = next(d.name for d in (sweep / ".submitit").iterdir() if d.name[0].isdigit())  # 12_0
    subprocess.run(["scancel", "--signal=USR2", job], check=True)

    def held():
        shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True)
        return "JobState=PENDING" in shown.stdout and "Restarts=1" in shown.stdout

    wait_for(held)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    names = sorted(d.name for d in sweep.iterdir() if d.name[0] != ".")
    assert names == sorted([folder.name, "multirun.yaml", "summary.csv"])  # no `<name>-1`
    assert len(list(folder.glob("events.out.tfevents.*.hparams"))) == 1  # the sweep's table
    log = (folder / "train.log").read_text()
    assert "requeued by SLURM: resuming" in log and "epoch 100/100" in log
    events = EventAccumulator(str(folder))
    events.Reload()
    assert [e.step for e in events.Scalars("loss/val")] == list(range(1, 101))
    assert [r["status"] for r in read_csv(sweep / "summary.csv")] == ["ok"]


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (["hydra/launcher=bogus"], "error: unknown option hydra/launcher=bogus; choose one of "),
        (["hydra/sweeper=bogus"], "error: unknown option hydra/sweeper=bogus; choose one of "),
        (["hparams_search=bogus"], "error: unknown option hparams_search=bogus; choose one of "),
        (["--cfg", "job"], "error: Only one of --run, --multirun, --cfg"),
    ],
)
def test_bad_sweep_command_lines_are_refused_in_one_line(tmp_path, args, first_line):
    result = run("-m", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0].startswith(first_line), result.stderr
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []


def test_summary_with_hydras_own_job_folder_names(tmp_path):
    """hydra.sweep.subdir set by the user (here Hydra's default pattern, one level deeper):
    the records are found, the summary and the exit code are the same."""
    sweep = tmp_path / "sweep"
    result = run("-m", "optim.lr=0.1,-1", "trainer.epochs=2", f"hydra.sweep.dir={sweep}",
                 "hydra.sweep.subdir=${hydra.job.num}/run")  # fmt: skip
    assert result.returncode == 2
    rows = read_csv(sweep / "summary.csv")
    assert [(r["optim.lr"], r["status"]) for r in rows] == [("0.1", "ok"), ("-1", "refused")]
    assert os.path.exists(sweep / rows[0]["folder"] / "metrics.json")


def test_launcher_settings_that_cannot_work_are_refused_before_any_job(tmp_path):
    result = run("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: hydra.launcher.n_jobs=0 must be a whole number of processes, not 0 (-1: one per "
        "core), e.g. hydra.launcher.n_jobs=2"
    )
    for value in ("0", "abc"):
        result = run("-m", "hydra/launcher=stacked", f"hydra.launcher.max_models={value}",
                     cwd=tmp_path)  # fmt: skip
        assert result.returncode == 2 and result.stderr.strip() == (
            f"error: hydra.launcher.max_models={value} must be a whole number of jobs per stack, "
            "at least 1 (1: no stacking), e.g. hydra.launcher.max_models=16"
        )
    empty = tmp_path / "bin"
    empty.mkdir()
    no_slurm = {"PATH": str(empty)}  # a machine without SLURM's commands
    result = cli(TRAIN, "-m", "hydra/launcher=slurm", cwd=tmp_path, env=no_slurm)
    assert result.returncode == 2
    assert result.stderr.startswith("error: the SLURM launcher needs SLURM's sbatch")
    assert len(result.stderr.splitlines()) == 1
    assert os.listdir(tmp_path) == ["bin"]  # no sweep folder left


def ctrl_c_when_two_jobs_saved(launcher: str, sweep) -> str:
    """A long two-job sweep, SIGINT to its process group once both jobs wrote last.pt; asserts
    exit code 130 and no traceback; returns stderr."""
    import signal
    import time

    args = ["-m", launcher, "seed=1,2", "trainer.epochs=1000", "dataset.n_train=20000",
            f"hydra.sweep.dir={sweep}"]  # fmt: skip
    child = subprocess.Popen([sys.executable, TRAIN, *args], cwd=sweep.parent, text=True,
                             start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 180
    while len(list(sweep.glob("*/last.pt"))) < 2:
        assert time.monotonic() < deadline and child.poll() is None, child.communicate()
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert "Traceback" not in err
    return err


@pytest.mark.slow
def test_ctrl_c_in_a_joblib_sweep_keeps_every_jobs_last_pt(tmp_path):
    """SIGINT to the terminal's process group while joblib's workers train: one line that says
    where the sweep is and how to resume a job; each job keeps its last.pt (loadable)."""

    import torch

    sweep = tmp_path / "sweep"
    err = ctrl_c_when_two_jobs_saved("hydra/launcher=joblib", sweep)
    assert f"interrupted (SIGINT) during the sweep in {sweep}" in err
    for last in sweep.glob("*/last.pt"):
        assert torch.load(last, weights_only=True)["epoch"] >= 1
    listed = run(str(sweep), script=SUMMARIZE)
    assert "0 (2 unfinished)" in listed.stdout  # seeds aggregated, neither finished


def test_a_job_resumed_after_its_record_counts_as_finished(tmp_path):
    """An interrupted job's record says 130; once `trainer.resume=` finished it, the summary
    reads its metrics.json: status ok, exit code 0."""
    import json

    from mlrefresh.sweeps.summary import collect

    job = tmp_path / "sweep" / "seed=1"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    (tmp_path / "sweep" / ".jobs").mkdir()
    record = {"job": 0, "overrides": ["seed=1"], "status": "interrupted", "exit_code": 130,
              "error": "interrupted at epoch 3/20", "metrics": {}, "folder": str(job)}  # fmt: skip
    (tmp_path / "sweep" / ".jobs" / "0.json").write_text(json.dumps(record))
    [row] = collect([tmp_path / "sweep"])
    assert (row["status"], row["exit_code"]) == ("interrupted", 130)
    (job / "metrics.json").write_text(json.dumps({"accuracy/val": 0.99, "epochs": 20}))
    [row] = collect([tmp_path / "sweep"])
    assert (row["status"], row["exit_code"], row["accuracy/val"]) == ("ok", 0, 0.99)
