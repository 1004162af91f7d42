"""Learning curves of a sweep, read back from its event files: one colour per contrasted setting,
a thin line per seed and a thick mean.

The contrast is whatever the jobs' overrides vary besides the seeds (`seed`, `dataset.seed`):
`loss` for `-m experiment=saturation`, `optim.lr` for `-m optim.lr=0.01,0.1`. Panels: validation
accuracy, validation NLL (or loss, for models without probabilities), diag/dz_abs, and kl/val
where the data's true posterior is known.

Example:
    python scripts/train.py -m experiment=saturation hydra.sweep.dir=outputs/sat
    python scripts/figures.py --sweep outputs/sat       # outputs/figures/sweep_sat.png
"""

import os
from collections import defaultdict

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mlrefresh.errors import DataError
from mlrefresh.plots.figures import plt, save
from mlrefresh.runs.records import read_overrides, skip_damaged
from mlrefresh.sweeps.summary import SEEDS

__all__ = ["draw_sweep", "read_sweep"]

COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]
DASHES = ["-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1))]


def read_sweep(sweep_dir) -> list[dict]:
    """[{overrides, scalars: {tag: (steps, values)}}] for every job with an event file."""
    if not os.path.isdir(sweep_dir):
        raise DataError(f"--sweep {sweep_dir}: no such folder; give a sweep folder (-m) or run")
    jobs = []
    for name in sorted(os.listdir(sweep_dir)):
        folder = os.path.join(sweep_dir, name)
        if not os.path.isfile(os.path.join(folder, ".hydra", "overrides.yaml")):
            continue
        if not any("tfevents" in f for f in os.listdir(folder)):
            continue
        overrides = skip_damaged(read_overrides, folder)
        if not overrides:
            continue
        acc = EventAccumulator(folder, size_guidance={"scalars": 0})
        acc.Reload()
        scalars = {}
        for tag in acc.Tags()["scalars"]:
            events = acc.Scalars(tag)
            scalars[tag] = ([e.step for e in events], [e.value for e in events])
        jobs.append({"overrides": overrides[0], "scalars": scalars})
    if not jobs:
        raise DataError(
            f"--sweep {sweep_dir}: no runs with event files in it; give the folder of a "
            "finished sweep, e.g. outputs/multirun/<date>_<time>"
        )
    return jobs


def _contrast(jobs):
    keys = sorted({k for j in jobs for k in j["overrides"]} - set(SEEDS))
    varying = [k for k in keys if len({j["overrides"].get(k) for j in jobs}) > 1]
    return varying


def _label(job, keys):
    return ", ".join(f"{k}={job['overrides'].get(k)}" for k in keys) or "all runs"


def draw_sweep(sweep_dir, out_dir) -> str:
    """A PNG of the sweep's curves in out_dir; returns its path."""
    jobs = read_sweep(sweep_dir)
    keys = _contrast(jobs)
    groups = defaultdict(list)
    for job in jobs:
        groups[_label(job, keys)].append(job["scalars"])
    second = "nll/val" if all("nll/val" in j["scalars"] for j in jobs) else "loss/val"
    panels = [("accuracy/val", "val accuracy"), (second, second.replace("/", " ")),
              ("diag/dz_abs", "mean |dL/dz| (train)")]  # fmt: skip
    if all("kl/val" in j["scalars"] for j in jobs):
        panels.append(("kl/val", "KL(p_true || p_model), val"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.9))
    for i, (group, runs) in enumerate(sorted(groups.items())):
        colour, dash = COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)]
        for ax, (tag, _) in zip(axes, panels):
            curves = [r[tag] for r in runs if tag in r]
            for steps, values in curves:
                ax.plot(steps, values, color=colour, linestyle=dash, linewidth=0.7, alpha=0.45)
            if curves:
                length = min(len(v) for _, v in curves)
                mean = [sum(v[s] for _, v in curves) / len(curves) for s in range(length)]
                ax.plot(curves[0][0][:length], mean, color=colour, linestyle=dash, linewidth=2.6,
                        label=f"{group} (n={len(curves)})")  # fmt: skip
    for ax, (tag, title) in zip(axes, panels):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if tag in ("diag/dz_abs", "kl/val"):  # symlog: an exact 0 (a dead unit) still shows
            ax.set_yscale("symlog", linthresh=1e-4)
    axes[0].legend(fontsize=9)
    name = os.path.basename(os.path.normpath(sweep_dir))
    contrast = ", ".join(keys) or "one setting"
    fig.suptitle(f"{name}: contrast {contrast}; thin lines one run each, thick the mean")
    os.makedirs(out_dir, exist_ok=True)
    return save(fig, os.path.join(out_dir, f"sweep_{name}.png"), dpi=75)
