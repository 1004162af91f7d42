"""A sweep's curves over seeds in TensorBoard (sweeps/seed_curves.py): one run per
configuration with the mean, min and max of its seeds, drawn by Custom Scalars as margin charts,
instead of 2 lines per job in each chart (issue 33, item 1)."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2

from helpers import TRAIN, cli

SWEEP = ["-m", "optim.lr=0.03,0.3", "seed=1,2,3", "trainer.epochs=3", "trainer.images=false",
         "dataset.n_train=300"]  # fmt: skip


def _events(folder):
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _layout(acc):
    if "custom_scalars__config__" not in acc.Tags()["tensors"]:
        return None
    stored = acc.Tensors("custom_scalars__config__")[0].tensor_proto
    return layout_pb2.Layout.FromString(stored.string_val[0])


def test_a_sweep_has_one_run_per_configuration_with_its_seeds_mean_min_and_max(tmp_path):
    sweep = tmp_path / "sweep"
    made = cli(TRAIN, *SWEEP, f"hydra.sweep.dir={sweep}")
    assert made.returncode == 0, made.stderr
    over = sweep / ".over_seeds"
    assert sorted(p.name for p in over.iterdir()) == ["optim.lr=0.03", "optim.lr=0.3"]
    for lr in ("0.03", "0.3"):
        jobs = [p for p in sweep.iterdir() if f"optim.lr={lr}," in p.name]
        assert len(jobs) == 3
        finals = [json.loads((j / "metrics.json").read_text())["accuracy/val"] for j in jobs]
        acc = _events(over / f"optim.lr={lr}")
        last = {t: acc.Scalars(t)[-1] for t in acc.Tags()["scalars"]}
        assert [e.step for e in acc.Scalars("mean/accuracy/val")] == [1, 2, 3]
        assert last["mean/accuracy/val"].value == pytest.approx(sum(finals) / 3, abs=1e-6)
        assert last["min/accuracy/val"].value == pytest.approx(min(finals), abs=1e-6)
        assert last["max/accuracy/val"].value == pytest.approx(max(finals), abs=1e-6)
        charts = {c.title: c for cat in _layout(acc).category for c in cat.chart}
        series = charts["accuracy/val"].margin.series[0]
        assert (series.value, series.lower, series.upper) == (
            "mean/accuracy/val", "min/accuracy/val", "max/accuracy/val")  # fmt: skip
        assert {"nll/val", "loss/train"} <= charts.keys()
    for job in (p for p in sweep.iterdir() if p.name.startswith("optim.lr")):
        assert _layout(_events(job)) is None  # a job's own "train vs val": 2 lines per job


def test_a_resumed_sweep_replaces_its_curves_over_seeds(tmp_path):
    """Run again (a resume), the sweep's curves are written anew, not beside the old ones; one
    that adds a learning rate names its configurations by it, and the earlier "all" is gone."""
    sweep = tmp_path / "sweep"
    rest = [*SWEEP[2:], f"hydra.sweep.dir={sweep}"]
    for lrs in ("0.03", "0.03", "0.03,0.3"):
        made = cli(TRAIN, "-m", f"optim.lr={lrs}", *rest)
        assert made.returncode == 0, made.stderr
        names = sorted(p.name for p in (sweep / ".over_seeds").iterdir())
        assert names == (["all"] if lrs == "0.03" else ["optim.lr=0.03", "optim.lr=0.3"])
        for folder in (sweep / ".over_seeds").iterdir():
            assert len(list(folder.glob("events.out.tfevents.*"))) == 1
