"""A finished sweep's curves over seeds, for TensorBoard: one run per configuration (the jobs'
overrides without `seed` and `dataset.seed`) in `<sweep>/.over_seeds/<configuration>/`, with the
mean, min and max over its seeds of each metric, every epoch (`mean/accuracy/val`,
`min/accuracy/val`, `max/accuracy/val`, ...), and a Custom Scalars layout that draws each
metric as one margin chart: a line per configuration, its band the seeds' min to max.

A 16-job sweep (4 learning rates x 4 seeds) gives each chart 4 lines instead of 32: the jobs of a
sweep write no per-run layout of their own (a single run keeps its "train vs val" charts). Read
from each job's last.pt (its per-epoch history); a resumed sweep's replaces the earlier one's.

Example:
    python scripts/train.py -m optim.lr=0.03,0.1 seed=1,2,3 hydra.sweep.dir=outputs/s
    tensorboard --logdir outputs/s   # Custom Scalars: accuracy/val, a line per lr, min-max band
"""

import contextlib
import os
import sys
from pathlib import Path

import torch

from mlrefresh.errors import UserError
from mlrefresh.runs.job_folders import short_name
from mlrefresh.sweeps.table import SEEDS, config_of

__all__ = ["FOLDER", "METRICS", "seed_layout", "write_seed_curves"]

FOLDER = ".over_seeds"  # in the sweep folder, a dot folder like .jobs/: the others are jobs
METRICS = ("accuracy/val", "accuracy/train", "nll/val", "nll/train", "loss/val", "loss/train",
           "kl/val")  # fmt: skip
CATEGORY = "mean and min-max over seeds, per configuration"
_SUFFIX = ".seeds"  # the end of the name of its event files


def seed_layout(metrics) -> dict:
    """The Custom Scalars layout: a margin chart per metric (mean, its band min to max), the
    first metric first (TensorBoard lays a category's charts out from its last)."""
    return {CATEGORY: {m: ["Margin", [f"mean/{m}", f"min/{m}", f"max/{m}"]]
                       for m in reversed(list(metrics))}}  # fmt: skip


def _name(overrides: dict, varying) -> str:
    """The configuration by the keys that differ between the sweep's configurations (the rest
    is the same in every run): `optim.lr=0.1`, or `all` for a sweep of seeds alone."""
    name = ",".join(f"{k}={overrides.get(k)}" for k in varying) or "all"
    return short_name(name.replace(os.sep, "_"))


def _history(folder) -> list[dict] | None:
    try:
        state = torch.load(Path(folder) / "last.pt", map_location="cpu", weights_only=True)
        return state["history"]
    except Exception:  # noqa: BLE001 (no last.pt, a damaged one: that job is left out)
        return None


def _groups(rows) -> dict[str, list[list[dict]]]:
    """{configuration: [each of its ok jobs' history]}."""
    rows = list(rows)
    keys = dict.fromkeys(k for r in rows for k in r["overrides"] if k not in SEEDS)
    varying = [k for k in keys if len({repr(r["overrides"].get(k)) for r in rows}) > 1]
    groups = {}
    for r in rows:
        if r["status"] == "ok" and r.get("folder") and (history := _history(r["folder"])):
            groups.setdefault(_name(r["overrides"], varying), []).append(history)
    return groups


def _write(folder: Path, histories: list[list[dict]], metrics) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from mlrefresh.plots.tensorboard import writing

    epochs = min(len(h) for h in histories)
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(log_dir=str(folder), filename_suffix=_SUFFIX)
        writer.add_custom_scalars(seed_layout(metrics))
        for epoch in range(epochs):
            for m in metrics:
                values = [h[epoch].get(m) for h in histories]
                if any(v is None for v in values):
                    continue
                writer.add_scalar(f"mean/{m}", sum(values) / len(values), epoch + 1)
                writer.add_scalar(f"min/{m}", min(values), epoch + 1)
                writer.add_scalar(f"max/{m}", max(values), epoch + 1)
        writer.close()


def write_seed_curves(sweep_dir, rows) -> None:
    """The over-seeds runs of a finished sweep (rows: summary.collect's, of jobs that wrote
    event files). A failure to write is a warning: the sweep's results are written already."""
    groups = _groups(r for r in rows if (config_of(r) or {}).get("trainer.tensorboard"))
    if not groups:
        return
    logged = {m for hs in groups.values() for h in hs for m in h[-1] if h[-1][m] is not None}
    metrics = [m for m in METRICS if m in logged]
    top = Path(sweep_dir) / FOLDER
    before = list(top.glob(f"*/events.out.tfevents.*{_SUFFIX}"))
    try:
        for name, histories in groups.items():
            _write(top / name, histories, metrics)
    except UserError as exc:
        print(f"warning: no curves over seeds for the sweep: {exc}", file=sys.stderr, flush=True)
        return
    for old in before:  # what an earlier run of the sweep wrote (its names may differ)
        with contextlib.suppress(OSError):  # left: shown twice, no worse
            old.unlink(missing_ok=True)
            old.parent.rmdir()  # emptied: a configuration of the earlier run's names
