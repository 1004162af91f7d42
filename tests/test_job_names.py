"""A sweep's job folders put the swept keys first (runs/job_folders.py): TensorBoard cuts a
long run name at its end, where Hydra's alphabetical order had put `optim.lr` and `seed`
(issue 33, item 1). A sweep started before, or resumed with more keys swept, keeps its folders."""

import json
import os

from helpers import TRAIN, cli
from mlrefresh.runs.job_folders import swept_first, swept_keys

REST = ["dataset=xor", "trainer.epochs=1", "trainer.images=false", "dataset.n_train=100"]


def _jobs(sweep):
    return sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name[0] != ".")


def _trained(sweep):
    """{job folder: when its last.pt was written}."""
    return {name: os.stat(sweep / name / "last.pt").st_mtime_ns for name in _jobs(sweep)}


def test_swept_keys_come_from_the_command_and_the_sweepers_params():
    given = ["dataset=xor", "optim.lr=0.1,0.3", "+extra=1", "seed=range(1,3)"]
    params = {"model": "logistic,mlp", "trainer.epochs": "5", "optim.momentum": "interval(0,1)"}
    assert swept_keys(given, params) == ["optim.lr", "seed", "model", "optim.momentum"]
    assert swept_first("a=[1,2],b='x,y',c=3", ["c", "b"]) == "c=3,b='x,y',a=[1,2]"


def test_a_sweeps_job_folders_put_its_swept_keys_first(tmp_path):
    sweep = tmp_path / "sweep"
    made = cli(TRAIN, "-m", "optim.lr=0.1,0.3", "seed=1,2", *REST, f"hydra.sweep.dir={sweep}")
    assert made.returncode == 0, made.stderr
    assert _jobs(sweep) == [
        f"optim.lr={lr},seed={s},dataset.n_train=100,dataset=xor,trainer.epochs=1,"
        "trainer.images=False" for lr in ("0.1", "0.3") for s in (1, 2)]  # fmt: skip


def _as_before(sweep):
    """The sweep as a version before this rule left it: Hydra's names, no swept keys noted."""
    manifest = json.loads((sweep / ".jobs" / "sweep.json").read_text())
    del manifest["swept"]
    (sweep / ".jobs" / "sweep.json").write_text(json.dumps(manifest))
    for name in _jobs(sweep):
        old = ",".join(sorted(name.split(",")))
        (sweep / name).rename(sweep / old)
        for note in (sweep / ".jobs").glob("*.folder"):
            if note.read_text().strip() == name:
                note.write_text(old + "\n")


def test_a_sweep_from_before_keeps_its_folders_when_resumed_with_more_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    first = cli(TRAIN, "-m", "optim.lr=0.1,0.3", "seed=1", *REST, f"hydra.sweep.dir={sweep}")
    assert first.returncode == 0, first.stderr
    _as_before(sweep)
    before = _trained(sweep)
    assert all(name.startswith("dataset.n_train=100,dataset=xor,optim.lr=") for name in before)
    more = cli(TRAIN, "-m", "optim.lr=0.1,0.3", "seed=1,2", *REST, f"hydra.sweep.dir={sweep}")
    assert more.returncode == 0, more.stderr
    after = _trained(sweep)
    assert {k: after[k] for k in before} == before  # given back, not trained again
    assert len(after) == 4  # and the two new jobs, named the new way
    assert sorted(set(after) - set(before)) == [
        f"optim.lr={lr},seed=2,dataset.n_train=100,dataset=xor,trainer.epochs=1,"
        "trainer.images=False" for lr in ("0.1", "0.3")]  # fmt: skip


def test_a_sweep_resumed_with_one_more_key_swept_keeps_its_folders(tmp_path):
    """seed swept alone, then optim.lr too: the jobs' names change order (optim.lr first), their
    folders are found by their overrides, whatever the order."""
    sweep = tmp_path / "sweep"
    first = cli(TRAIN, "-m", "optim.lr=0.1", "seed=1,2", *REST, f"hydra.sweep.dir={sweep}")
    assert first.returncode == 0, first.stderr
    before = _trained(sweep)
    assert all(name.startswith("seed=") for name in before)
    more = cli(TRAIN, "-m", "optim.lr=0.1,0.3", "seed=1,2", *REST, f"hydra.sweep.dir={sweep}")
    assert more.returncode == 0, more.stderr
    after = _trained(sweep)
    assert {k: after[k] for k in before} == before and len(after) == 4
