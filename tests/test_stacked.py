"""Many runs as one: stacked models against the same jobs one by one (hydra/launcher=stacked).

In-process (compose API): train_stacked against train() job by job, for every kind of model,
loss and optimizer, with per-job learning rates, momenta, weight decays, inits and seeds; a job
that diverges inside a stack; a stacked job resumed on its own. The pieces: StackedLinear's
hand-written backward against PyTorch's in float64, the stacked optimizers against M separate
ones. The command line in-process (helpers.cli): the launcher against the basic launcher on the
same sweep (folders, files, metrics, each job's curve, the summary), a mixed sweep (a stack, a
job alone, refused jobs, a diverged one). Slow (a real process): Ctrl-C during a stack.
"""

import os
import re

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers import SUMMARIZE, make_cfg
from hydra_plugins.mlrefresh_plugins.stacked_launcher import group_key
from mlrefresh.errors import DivergedError, OutputError
from mlrefresh.models import build_model
from mlrefresh.optim import build_optimizer
from mlrefresh.runs.run import train
from mlrefresh.sweeps.stacked_model import (
    StackedLinear,
    StackedOptimizer,
    model_slice,
    stack_models,
)
from mlrefresh.sweeps.stacking import same_rows as _same_rows
from mlrefresh.sweeps.stacking import train_stacked
from test_sweeps import MIXED, check_mixed, ctrl_c_when_two_jobs_saved, read_csv, run

TOLERANCE = 1e-5  # the issue asks for 0.003; stacking changes only the order of float sums


def scalars(run_dir, tag):
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return sorted((e.step, e.value) for e in acc.Scalars(tag))  # a resumed job: two files


def close(a: dict, b: dict, tol=TOLERANCE) -> bool:
    keys = [k for k, v in a.items() if isinstance(v, float) and k != "train_seconds"]
    return all(abs(a[k] - b[k]) <= tol for k in keys) and a.keys() == b.keys()


# --- the pieces -----------------------------------------------------------------------------


@pytest.mark.parametrize("batches", [4, 2, 1])  # one batch per model, shared by 2, by all
def test_stacked_linear_matches_pytorch_per_model_in_float64(batches):
    torch.manual_seed(0)
    x = torch.randn(batches, 5, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(StackedLinear.apply, (x, w, b))
    z = StackedLinear.apply(x, w, b)
    share = 4 // batches  # models m reads batch m // share
    expected = torch.stack(
        [torch.nn.functional.linear(x[m // share], w[m], b[m]) for m in range(4)]
    )
    assert torch.allclose(z, expected)
    g = torch.randn_like(z)
    ours = torch.autograd.grad(z, (x, w, b), g)
    theirs = torch.autograd.grad(expected, (x, w, b), g)
    assert all(torch.allclose(o, t) for o, t in zip(ours, theirs))


def test_jobs_of_one_seed_read_their_batches_once():
    assert _same_rows([1, 1, 2, 2]) == 2 and _same_rows([3, 3, 3]) == 3
    assert _same_rows([1, 2, 3]) == 1 and _same_rows([1, 1, 2]) == 1
    assert _same_rows([1, 2, 1, 2]) == 1  # not in runs: train_stacked sorts by seed first


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_stacked_optimizer_equals_one_optimizer_per_model(name):
    configs = [
        {"name": name, "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0, "schedule": "cosine"},
        {"name": name, "lr": 0.3, "momentum": 0.0, "weight_decay": 0.01, "schedule": "cosine"},
    ]
    if name == "adam":
        configs = [{k: v for k, v in c.items() if k != "momentum"} for c in configs]
    torch.manual_seed(1)
    models = [build_model("softmax", 4, 3, "normal", 1.0).double() for _ in configs]
    stack = stack_models(models)
    alone = [build_optimizer(c, m.parameters(), 6) for c, m in zip(configs, models)]
    stacked = StackedOptimizer(configs, stack.parameters(), 6)
    schedule = stacked.schedule
    x, t = torch.randn(2, 8, 4, dtype=torch.float64), torch.randint(0, 3, (2, 8))
    for step in range(6):
        for m, (model, (optimizer, own_schedule)) in enumerate(zip(models, alone)):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[m]), t[m]).backward()
            own_schedule(step)
            optimizer.step()
        stacked.zero_grad()
        z = stack(x)
        sum(torch.nn.functional.cross_entropy(z[m], t[m]) for m in range(2)).backward()
        schedule(step)
        stacked.step()
    for m, model in enumerate(models):
        for key, value in model.state_dict().items():
            assert torch.allclose(model_slice(stack, m)[key], value, atol=1e-12)
        mine, theirs = stacked.state_dict(m), alone[m][0].state_dict()
        for key in ("velocity", "m", "s"):
            for a, b in zip(mine.get(key) or [], theirs.get(key) or []):
                assert torch.allclose(a, b, atol=1e-12)


def test_group_key_separates_what_cannot_share_a_stack():
    base = ["trainer.epochs=2"]
    same = [make_cfg(*base, "seed=1"), make_cfg(*base, "seed=2", "optim.lr=0.3"),
            make_cfg(*base, "optim.momentum=0.5", "optim.weight_decay=0.1",
                     "model.init=normal", "model.init_scale=2")]  # fmt: skip
    assert len({group_key(c) for c in same}) == 1
    other = [make_cfg(*base, "trainer.batch_size=7"), make_cfg(*base, "loss=square"),
             make_cfg(*base, "dataset.seed=3"), make_cfg(*base, "optim=adam"),
             make_cfg("trainer.epochs=3")]  # fmt: skip
    assert len({group_key(c) for c in same[:1] + other}) == 1 + len(other)
    assert group_key(make_cfg(*base, "optim.lr=-1")) is None  # refused: by its own run
    assert group_key(make_cfg(*base, "trainer.resume=/x")) is None


# --- train_stacked against train(), job by job ----------------------------------------------

KINDS = {
    "softmax-ce-sgd": ["model=softmax", "loss=ce", "dataset.num_classes=3"],
    "logistic-square": ["model=logistic", "loss=square"],
    "clamped-square": ["model=clamped", "loss=square"],
    "mlp": ["model=mlp", "loss=ce", "model.init=normal", "model.init_scale=1.0"],
    "softmax-square-adam-cosine": ["model=softmax", "loss=square", "optim=adam",
                                   "optim.schedule=cosine", "dataset.num_classes=3"],
}  # fmt: skip
JOBS = [["seed=1", "optim.lr=0.1"], ["seed=2", "optim.lr=0.3", "optim.weight_decay=0.01"],
        ["seed=1", "optim.lr=0.03", "model.init_scale=0.5"]]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_stacked_jobs_equal_the_same_jobs_one_by_one(tmp_path, kind):
    cfgs = []
    for i, own in enumerate(JOBS):
        extra = [*own, "trainer.epochs=3", "dataset.n_train=300"]
        if "optim=adam" not in KINDS[kind]:
            extra.append(f"optim.momentum={0.9 if i == 1 else 0.0}")
        if kind != "mlp" and i == 2:
            extra.append("model.init=wrong")
        cfgs.append(make_cfg(*KINDS[kind], *extra))
    alone = [train(c, run_dir=tmp_path / f"alone{i}") for i, c in enumerate(cfgs)]
    train_stacked([(c, tmp_path / f"stacked{i}") for i, c in enumerate(cfgs)])
    stacked = [train(c, run_dir=tmp_path / f"stacked{i}") for i, c in enumerate(cfgs)]
    for i, (a, s) in enumerate(zip(alone, stacked)):
        assert close(a, s), (i, a, s)
        one, other = tmp_path / f"alone{i}", tmp_path / f"stacked{i}"
        assert sorted(p.name.split(".")[0] for p in one.iterdir()) == sorted(
            p.name.split(".")[0] for p in other.iterdir()
        )  # events.out..., last.pt, metrics.json, model.pt
        for tag in ("loss/train", "accuracy/val", "grad_norm", "diag/dz_abs"):
            mine, theirs = scalars(other, tag), scalars(one, tag)
            assert [s for s, _ in mine] == [s for s, _ in theirs] == [1, 2, 3]
            assert all(abs(a - b) <= TOLERANCE for (_, a), (_, b) in zip(mine, theirs))
        w_alone = torch.load(one / "model.pt", weights_only=True)["state_dict"]
        w_stack = torch.load(other / "model.pt", weights_only=True)["state_dict"]
        assert {k: v.shape for k, v in w_alone.items()} == {k: v.shape for k, v in w_stack.items()}
        assert all(torch.allclose(w_alone[k], w_stack[k], atol=1e-5) for k in w_alone)
    assert stacked[0] != stacked[2]  # the same seed, another lr: another model


SWEEP = [(lr, seed) for lr in (0.03, 0.1, 0.3) for seed in (4, 5, 6, 7)]  # the issue's sweep


def test_a_stack_rounds_as_each_job_alone_bit_for_bit(one_thread):
    """12 jobs (3 learning rates x 4 seeds) of 10 classes and 784 features, an epoch of 16
    steps: every parameter of every job equals its run alone's to the last bit. At lr 0.3 the
    last bits grow over an epoch, so any rounding the stack does differently shows: the loss on
    M x 128 rows (loss_plumbing.log_softmax), the product (Model.layer), the update with a
    tensor learning rate and its schedule (optim._add_scaled_, StackedOptimizer)."""
    from mlrefresh.data.dataset import Dataset
    from mlrefresh.sweeps.stacking import StackedTraining
    from mlrefresh.train import Training, fit, seeded_model

    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(2000, 784, generator=gen), torch.randint(0, 10, (2000,), generator=gen)
    data = Dataset("random", x, y, x[:500], y[:500], 10, "random pixels")
    cfgs = [make_cfg("model=softmax", "model.init=normal", f"optim.lr={lr}", f"seed={seed}",
                     "trainer.batch_size=128", "trainer.epochs=2")
            for lr, seed in SWEEP]  # fmt: skip
    parts = [seeded_model(c, data) for c in cfgs]
    stack = StackedTraining(cfgs, data, [m for m, _ in parts], [g for _, g in parts])
    fit(stack, data, 1, 128, 1, lambda *_: None)
    for m, cfg in enumerate(cfgs):
        model, generator = seeded_model(cfg, data)
        fit(Training(cfg, data, model, generator), data, 1, 128, 1, lambda *_: None)
        mine, theirs = model.state_dict(), model_slice(stack.model, m)
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), SWEEP[m]


def _stacked_steps(make, model_name, share, x, y):
    from mlrefresh.objective import Objective

    torch.manual_seed(0)
    models = [build_model(model_name, x.shape[1], 10 if model_name == "softmax" else 2)
              for _ in range(4)]  # fmt: skip
    for model in models:
        torch.nn.init.normal_(model.linear.weight, 0.0, 0.1)
    stack = stack_models(models)
    objective = Objective("ce", stack)
    cfgs = [{"name": "sgd", "lr": lr, "momentum": 0.9, "schedule": "cosine"}
            for lr in (0.1, 0.1, 0.5, 0.5)]  # fmt: skip
    optimizer = StackedOptimizer(cfgs, stack.parameters(), total_steps=8)
    step = make(stack, objective, optimizer, x, objective.targets(y), share)
    gen, seen = torch.Generator().manual_seed(1), []
    perms = torch.stack([torch.randperm(len(y), generator=gen)[:600] for _ in range(4 // share)])
    for i, idx in enumerate(perms.repeat_interleave(share, 0).split(128, dim=1)):
        optimizer.schedule(i)  # 4 full batches, then a partial one
        z, norms = step(idx)
        seen += [z, *norms]
    return [*stack.parameters(), *seen]


def test_stacked_linear_models_with_a_loss_on_the_logits_take_the_written_out_step():
    from mlrefresh.objective import Objective
    from mlrefresh.sweeps.stacking import stacked_step

    x, t = torch.randn(8, 3), torch.tensor([0, 1] * 4)
    for model_name, loss, kind in [("softmax", "ce", "stacked_linear_step"),
                                   ("logistic", "ce", "stacked_linear_step"),
                                   ("softmax", "square", "stacked_autograd_step"),
                                   ("mlp", "ce", "stacked_autograd_step")]:  # fmt: skip
        stack = stack_models([build_model(model_name, 3, 2) for _ in range(2)])
        objective = Objective(loss, stack)
        cfgs = [{"name": "sgd", "lr": 0.1}] * 2
        optimizer = StackedOptimizer(cfgs, stack.parameters(), total_steps=1)
        step = stacked_step(stack, objective, optimizer, x, objective.targets(t), 1)
        assert step.__qualname__.startswith(kind), (model_name, loss, step.__qualname__)


@pytest.mark.parametrize("model_name", ["logistic", "softmax"])
@pytest.mark.parametrize("share", [1, 2])
def test_the_written_out_stacked_step_is_autograds_to_the_last_bit(one_thread, model_name, share):
    from mlrefresh.sweeps.stacking import stacked_autograd_step, stacked_linear_step

    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (1000, 784), dtype=torch.uint8, generator=gen)  # image bytes
    y = torch.randint(0, 10 if model_name == "softmax" else 2, (1000,), generator=gen)
    written_out = _stacked_steps(stacked_linear_step, model_name, share, x, y)
    autograd = _stacked_steps(stacked_autograd_step, model_name, share, x, y)
    assert all(torch.equal(a, b) for a, b in zip(written_out, autograd, strict=True))


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"),
    reason="needs Debian's dataset-fashion-mnist",
)
def test_the_issues_twelve_job_sweep_agrees_at_every_learning_rate(tmp_path):
    """optim.lr=0.03,0.1,0.3 seed=4,5,6,7, 5 epochs of Fashion-MNIST softmax regression: each
    stacked job's val loss and accuracy within 0.003 of its run alone (lr=0.3 seed=7 was 0.0055
    apart: the loss of M x 128 rows took another log-softmax kernel), at the default threads."""
    over = ["model=softmax", "dataset=fashion_mnist", "trainer.epochs=5", "trainer.images=false"]
    cfgs = [make_cfg(*over, f"optim.lr={lr}", f"seed={seed}") for lr, seed in SWEEP]
    outcomes = train_stacked([(c, tmp_path / f"stacked{i}") for i, c in enumerate(cfgs)])
    for i, cfg in enumerate(cfgs):
        alone = train(cfg, run_dir=tmp_path / f"alone{i}")
        stacked = outcomes[os.path.abspath(tmp_path / f"stacked{i}")]
        for key in ("loss/val", "accuracy/val", "loss/train"):
            assert abs(stacked[key] - alone[key]) <= 0.003, (SWEEP[i], key, stacked, alone)


def test_jobs_sharing_seeds_share_batches_and_equal_their_runs_alone(tmp_path):
    """lr x seed, the usual sweep: 2 seeds x 2 learning rates, each seed's batches read once."""
    cfgs = [make_cfg("model=mlp", "model.init=normal", "model.init_scale=1.0", f"seed={seed}",
                     f"optim.lr={lr}", "trainer.epochs=2", "dataset.n_train=300")
            for lr in (0.1, 0.3) for seed in (1, 2)]  # fmt: skip
    train_stacked([(c, tmp_path / f"s{i}") for i, c in enumerate(cfgs)])
    for i, c in enumerate(cfgs):
        assert close(train(c, run_dir=tmp_path / f"s{i}"), train(c, run_dir=tmp_path / f"a{i}"))


def test_a_diverging_job_ends_alone_and_its_stack_goes_on(tmp_path):
    square = ["model=linear", "loss=square", "optim.schedule=constant", "trainer.epochs=3"]
    ok, bad = make_cfg(*square, "optim.lr=0.1"), make_cfg(*square, "optim.lr=1e4")
    with pytest.raises(DivergedError) as alone_error:
        train(bad, run_dir=tmp_path / "bad_alone")
    train_stacked([(ok, tmp_path / "ok"), (bad, tmp_path / "bad")])
    with pytest.raises(DivergedError) as stacked_error:
        train(bad, run_dir=tmp_path / "bad")
    assert str(stacked_error.value) == str(alone_error.value).replace("bad_alone", "bad")
    assert not (tmp_path / "bad" / "model.pt").exists()
    assert close(train(ok, run_dir=tmp_path / "ok"), train(ok, run_dir=tmp_path / "ok_alone"))


def test_a_job_whose_files_cannot_be_written_fails_alone(tmp_path):
    cfgs = [make_cfg("trainer.epochs=2", f"seed={s}") for s in (1, 2)]
    (tmp_path / "s1" / "last.pt").mkdir(parents=True)  # last.pt cannot replace a folder
    train_stacked([(c, tmp_path / f"s{i}") for i, c in enumerate(cfgs)])
    with pytest.raises(OutputError, match=r"cannot write .*s1/last.pt") as failed:
        train(cfgs[1], run_dir=tmp_path / "s1")
    assert failed.value.kept and not (tmp_path / "s1" / "metrics.json").exists()
    assert close(train(cfgs[0], run_dir=tmp_path / "s0"), train(cfgs[0], run_dir=tmp_path / "a"))


def test_a_stacked_job_resumes_on_its_own(tmp_path):
    """last.pt of a stacked job holds that job's model and momentum: extending it alone gives
    what extending the job run alone gives."""
    cfgs = [make_cfg("trainer.epochs=2", "optim.momentum=0.9", f"seed={s}") for s in (1, 2)]
    train_stacked([(c, tmp_path / f"s{i}") for i, c in enumerate(cfgs)])
    [train(c, run_dir=tmp_path / f"s{i}") for i, c in enumerate(cfgs)]
    train(cfgs[1], run_dir=tmp_path / "alone")
    more = []
    for folder in ("s1", "alone"):
        resume = f"trainer.resume={tmp_path / folder}"
        more.append(train(make_cfg(resume, "trainer.epochs=4", "optim.momentum=0.9", "seed=2")))
    assert close(*more)
    assert [s for s, _ in scalars(tmp_path / "s1", "loss/val")] == [1, 2, 3, 4]


# --- the launcher, as a user runs it -----------------------------------------------------------


def test_stacked_launcher_gives_the_basic_launchers_folders(tmp_path):
    sweep = ["optim.lr=0.03,0.3", "seed=4,5", "trainer.epochs=3", "dataset.n_train=400"]
    basic = run("-m", *sweep, f"hydra.sweep.dir={tmp_path}/basic")
    stacked = run("-m", "hydra/launcher=stacked", *sweep, f"hydra.sweep.dir={tmp_path}/st")
    assert basic.returncode == stacked.returncode == 0, stacked.stderr
    assert "4 in 1 stack(s), 0 one by one" in stacked.stdout
    jobs = sorted(p.name for p in (tmp_path / "basic").iterdir() if p.is_dir() and p.name[0] != ".")
    assert len(jobs) == 4

    def listing(folder):  # an event file's name holds its time, host and process
        return sorted(re.sub(r"tfevents\..*", "tfevents", n) for n in os.listdir(folder))

    assert listing(tmp_path / "basic") == listing(tmp_path / "st")
    for job in jobs:
        one, other = tmp_path / "basic" / job, tmp_path / "st" / job
        names = sorted(p.name.split(".")[0] for p in one.iterdir())
        assert names == sorted(p.name.split(".")[0] for p in other.iterdir())
        for f in ("overrides.yaml", "config.yaml"):
            assert (one / ".hydra" / f).read_text() == (other / ".hydra" / f).read_text()
        mine, theirs = scalars(other, "loss/val"), scalars(one, "loss/val")
        assert [s for s, _ in mine] == [1, 2, 3]
        assert all(abs(a - b) <= 0.003 for (_, a), (_, b) in zip(mine, theirs))
        log = (other / "train.log").read_text()
        assert "trained stacked with 3 other job(s)" in log and "epoch 3/3" in log
    rows = {r["folder"]: r for r in read_csv(tmp_path / "basic" / "summary.csv")}
    for row in read_csv(tmp_path / "st" / "summary.csv"):
        assert row["status"] == rows[row["folder"]]["status"] == "ok"
        for key in ("accuracy/val", "nll/val", "loss/val"):
            assert abs(float(row[key]) - float(rows[row["folder"]][key])) <= 0.003
    curves = [scalars(tmp_path / "st" / job, "loss/val")[-1][1] for job in jobs]
    assert len(set(curves)) == 4  # each job its own curve


APP = """
import json, sys
import hydra
from omegaconf import OmegaConf

@hydra.main(version_base="1.3", config_path={configs!r}, config_name="train")
def main(cfg):  # not the project's task function: it writes one file and trains nothing
    out = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
    with open(out + "/mine.json", "w") as f:
        json.dump({{"seed": cfg.seed, "lr": cfg.optim.lr}}, f)
    return cfg.seed

if __name__ == "__main__":
    main()
"""


@pytest.mark.slow  # two sweeps of an app in processes of their own
def test_another_task_function_is_called_once_per_job_as_by_the_basic_launcher(tmp_path):
    """Hydra's Launcher contract: a job does what its task function does. The stacked launcher
    stacks only the project's own jobs (cli.task); another app's jobs hold only what it
    wrote, as under the basic launcher (they held metrics.json, last.pt and event files)."""
    from helpers import CONFIGS, run_script

    app = tmp_path / "app.py"
    app.write_text(APP.format(configs=CONFIGS))
    sweep = ["-m", "optim.lr=0.03,0.3", "seed=4,5", "hydra.job.chdir=false"]
    for launcher in ("basic", "stacked"):
        result = run_script(app, *sweep, f"hydra/launcher={launcher}",
                            f"hydra.sweep.dir={tmp_path / launcher}", cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr
    jobs = sorted(p.name for p in (tmp_path / "basic").iterdir() if p.is_dir() and p.name[0] != ".")
    assert len(jobs) == 4
    for job in jobs:
        one, other = tmp_path / "basic" / job, tmp_path / "stacked" / job
        assert (
            sorted(os.listdir(other))
            == sorted(os.listdir(one))
            == [".hydra", "mine.json", "train.log"]  # the job's log: hydra.job.name
        )
        assert (other / "mine.json").read_text() == (one / "mine.json").read_text()


def test_mixed_sweep_under_the_stacked_launcher(tmp_path):
    """The sweeps' mixed sweep (ok, diverged, refused) ends as under the basic launcher; with
    three seeds and max_models=2, a stack of two and a job alone."""
    sweep = tmp_path / "sweep"
    result = run("-m", "hydra/launcher=stacked", *MIXED, f"hydra.sweep.dir={sweep}")
    check_mixed(result, sweep)
    assert "2 in 1 stack(s), 1 one by one" in result.stdout
    assert result.stderr.count("error: optim.lr=-1") == 1
    assert result.stderr.count("error: the loss became") == 1
    more = run("-m", "hydra/launcher=stacked", "hydra.launcher.max_models=2", "seed=1,2,3",
               "optim.lr=0.1,-1", "trainer.epochs=2",
               f"hydra.sweep.dir={tmp_path}/more")  # fmt: skip
    assert more.returncode == 2 and "Traceback" not in more.stderr
    assert "2 in 1 stack(s), 4 one by one" in more.stdout
    rows = read_csv(tmp_path / "more" / "summary.csv")
    assert sorted(r["status"] for r in rows) == ["ok"] * 3 + ["refused"] * 3


@pytest.mark.slow
def test_ctrl_c_during_a_stack_keeps_every_jobs_last_pt(tmp_path):
    sweep = tmp_path / "sweep"
    err = ctrl_c_when_two_jobs_saved("hydra/launcher=stacked", sweep)
    assert err.count("resume with: python scripts/train.py") == 2, err
    jobs = [p for p in sweep.iterdir() if p.is_dir() and p.name[0] != "."]
    assert len(jobs) == 2
    for job in jobs:
        assert torch.load(job / "last.pt", weights_only=True)["epoch"] >= 1
        assert "trained stacked" in (job / "train.log").read_text()
    assert "interrupted" in run(str(sweep), script=SUMMARIZE).stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_stacked_jobs_on_cuda_equal_the_same_jobs_one_by_one(tmp_path):
    cfgs = [make_cfg("device=cuda", "trainer.epochs=2", f"seed={s}") for s in (1, 2)]
    alone = [train(c, run_dir=tmp_path / f"a{i}") for i, c in enumerate(cfgs)]
    train_stacked([(c, tmp_path / f"s{i}") for i, c in enumerate(cfgs)])
    for i, c in enumerate(cfgs):
        assert close(alone[i], train(c, run_dir=tmp_path / f"s{i}"), tol=1e-4)


@pytest.mark.parametrize("optim", [["optim.momentum=0.9"], ["optim=adam", "optim.lr=0.01"]])
def test_a_stack_resumed_from_its_jobs_last_pt_equals_one_never_stopped(tmp_path, optim):
    """The stacked launcher's resume (a resumed sweep's jobs stopped at one epoch): each job's
    model, optimizer state and batch order come from its own last.pt, and the stack goes on to
    the same numbers as a stack that never stopped."""
    args = ["optim.schedule=constant", *optim]
    cfgs = [make_cfg(*args, "trainer.epochs=3", f"seed={s}") for s in (1, 2)]
    whole = train_stacked([(c, tmp_path / f"whole{i}") for i, c in enumerate(cfgs)])
    first = [make_cfg(*args, "trainer.epochs=1", f"seed={s}") for s in (1, 2)]
    train_stacked([(c, tmp_path / f"part{i}") for i, c in enumerate(first)])
    states = []
    for i in range(2):
        state = torch.load(tmp_path / f"part{i}" / "last.pt", weights_only=False)
        state["config"]["trainer"]["epochs"] = 3  # as if saved after epoch 1 of 3
        states.append(state)
    resumed = train_stacked([(c, tmp_path / f"part{i}", states[i]) for i, c in enumerate(cfgs)])
    for i in range(2):
        a, b = whole[str(tmp_path / f"whole{i}")], resumed[str(tmp_path / f"part{i}")]
        assert close(a, b, tol=0.0), (a, b)
        saved = torch.load(tmp_path / f"part{i}" / "last.pt", weights_only=False)
        assert saved["epoch"] == 3 and saved["stack_from"] == 1 and len(saved["history"]) == 3
