"""Learning curves of a sweep, read back from its event files: one colour per contrasted setting,
a thin line per seed and a thick mean. Where the settings differ in their loss, each loss has
its colour of every figure (figures.STYLE: cross-entropy green, squared error orange).

The contrast is whatever the jobs' overrides vary besides the seeds (`seed`, `dataset.seed`):
`loss` for `-m experiment=saturation`, `optim.lr` for `-m optim.lr=0.01,0.1`. Panels, two to a
row, the legend above them: validation accuracy (its axis at least 0.1 tall: a spread of 0.01
is noise), validation NLL (where a model has no probabilities: each loss on its own panel, as
square loss and cross-entropy are not on one scale), diag/dz_abs, and where the data's true
posterior is known kl/val, and for `experiment=kl` the claim it checks: NLL - KL = the entropy
of p(y|x), one dot per run at its final epoch against its data set's entropy, on the line y = x
(the experiment's data sets differ in spread, `dataset.std`: not a contrast there but the data
sets the claim runs over, as `dataset.seed` is elsewhere).

Example:
    python scripts/train.py -m experiment=saturation hydra.sweep.dir=outputs/sat
    python scripts/figures.py --sweep outputs/sat       # outputs/figures/sweep_sat.png
"""

import os
from collections import defaultdict

from matplotlib.ticker import MaxNLocator
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mlrefresh.errors import DataError
from mlrefresh.plots.figures import STYLE, plt
from mlrefresh.runs.records import read_config, read_overrides, skip_damaged
from mlrefresh.sweeps.summary import SEEDS

__all__ = ["draw_sweep", "group_styles", "read_sweep", "sweep_figure", "symlog_axis"]

COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d",
           "#1f78b4", "#666666", "#b15928"]  # fmt: skip
# a contrast that is no loss's: no loss's colour, and no green (read as cross-entropy's)
OTHERS = ["#7570b3", "#e7298a", "#1f78b4", "#a6761d", "#e6ab02", "#666666", "#b15928"]
DASHES = ["-", "--", ":", "-."]  # with the colours: 10 x 4 settings, no two alike
MARKERS = ["o", "x", "s", "^", "D", "v", "+", "*", "P", "<"]  # dots (kl): hollow o, x, ...


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
        config = skip_damaged(read_config, folder)
        loss = (config[0] or {}).get("loss.name", "?") if config else "?"
        jobs.append({"overrides": overrides[0], "scalars": scalars, "loss": loss})
    if not jobs:
        raise DataError(
            f"--sweep {sweep_dir}: no runs with event files in it; give the folder of a "
            "finished sweep, e.g. outputs/multirun/<date>_<time>"
        )
    return jobs


DATA_SETS = {"kl": ("dataset.std",)}  # an experiment's data sets, besides dataset.seed


def _kl(jobs) -> bool:
    return any(j["overrides"].get("experiment") == "kl" for j in jobs)


def _contrast(jobs):
    data_sets = DATA_SETS["kl"] if _kl(jobs) else ()
    keys = sorted({k for j in jobs for k in j["overrides"]} - set(SEEDS) - set(data_sets))
    varying = [k for k in keys if len({j["overrides"].get(k) for j in jobs}) > 1]
    return varying


def _label(job, keys):
    return ", ".join(f"{k}={job['overrides'].get(k)}" for k in keys) or "all runs"


def _panels(jobs) -> list[tuple]:
    """(tag, title, which jobs) per panel."""
    every = lambda job: True  # noqa: E731
    panels = [("accuracy/val", "val accuracy", every)]
    if all("nll/val" in j["scalars"] for j in jobs):
        panels.append(("nll/val", "NLL, val (nats)", every))
    else:  # no probabilities somewhere: each loss on its own scale
        for loss in sorted({j["loss"] for j in jobs}):
            mine = lambda j, name=loss: j["loss"] == name  # noqa: E731
            panels.append(("loss/val", f"loss {loss}, val", mine))
    panels.append(("diag/dz_abs", "mean |dL/dz| (train)", every))
    if all("kl/val" in j["scalars"] for j in jobs):
        panels.append(("kl/val", "KL(p_true || p_model), val", every))
        if _kl(jobs) and all("entropy/val" in j["scalars"] and "nll/val" in j["scalars"]
                             for j in jobs):  # fmt: skip
            title = "NLL - KL = entropy of p_true(y|x): each run's last epoch, val"
            panels.append(("nll-kl", title, every))
            title = "NLL - KL - entropy: the noise of the sampled val labels"
            panels.append(("nll-kl-entropy", title, every))
    return panels


def _by_data_set(members, jobs) -> list[list]:
    """A group's jobs, per data set where the sweep's data sets are not alike (experiment=kl:
    a mean over data sets of different entropies would be no run's curve)."""
    if not _kl(jobs):
        return [members]
    keys = ("dataset.seed", *DATA_SETS["kl"])
    subsets = defaultdict(list)
    for job in members:
        subsets[tuple(str(job["overrides"].get(k)) for k in keys)].append(job)
    return [subsets[k] for k in sorted(subsets)]


def _dots(ax, tag, runs, colour, marker, label):
    """The kl claim: per run, NLL - KL (or NLL - KL - entropy) at the last epoch against its
    data set's entropy."""
    entropy = [r["entropy/val"][1][-1] for r in runs]
    rest = [r["nll/val"][1][-1] - r["kl/val"][1][-1] for r in runs]
    if tag == "nll-kl-entropy":
        rest = [a - b for a, b in zip(rest, entropy)]
    ax.scatter(entropy, rest, color=colour, marker=marker, s=40, linewidths=1.4, zorder=3,
               facecolors="none" if marker == "o" else colour, label=label)  # fmt: skip


def _residual_axis(ax):
    ax.axhline(0, color="black", linewidth=0.8, zorder=1)
    high = max(abs(ax.dataLim.y0), abs(ax.dataLim.y1), 0.005) * 1.3
    ax.set_ylim(-high, high)
    ax.set_xlabel("entropy of p_true(y|x), val (nats)")
    ax.set_ylabel("nll/val - kl/val - entropy")
    ax.grid(alpha=0.3)


def _line_of_equality(ax):
    low = min(ax.dataLim.x0, ax.dataLim.y0, 0.0)
    high = max(ax.dataLim.x1, ax.dataLim.y1) * 1.05
    ax.plot([low, high], [low, high], color="black", linewidth=0.8, zorder=1,
            label="y = x")  # fmt: skip
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("entropy of p_true(y|x), val (nats)")
    ax.set_ylabel("nll/val - kl/val (nats)")


def _draw(ax, tag, runs, colour, dash, label, marker="o"):
    if tag.startswith("nll-kl"):
        _dots(ax, tag, runs, colour, marker, label)
        return
    curves = [c for c in (r.get(tag) for r in runs) if c]
    for steps, values in curves:
        ax.plot(steps, values, color=colour, linestyle=dash, linewidth=0.7, alpha=0.45)
    if curves:
        length = min(len(v) for _, v in curves)
        mean = [sum(v[s] for _, v in curves) / len(curves) for s in range(length)]
        ax.plot(curves[0][0][:length], mean, color=colour, linestyle=dash, linewidth=2.6,
                label=label)  # fmt: skip


def _accuracy_axis(ax) -> None:
    low, high = ax.get_ylim()
    if high - low < 0.1:  # a spread of 0.01 drawn full height looks like a difference
        middle = (low + high) / 2
        low, high = middle - 0.05, middle + 0.05
        shift = max(0.0, high - 1.005)
        ax.set_ylim(low - shift, high - shift)


def symlog_axis(ax, linthresh: float = 1e-4) -> None:
    """A symlog y axis (an exact 0 still shows; from just below 0 when a curve is at 0),
    labelled finely enough that a curve within one decade gets several labels (it had one: "0.1",
    or a lone "0"): every 1..9 of a decade within half a decade, 1, 2, 3, 5 within 1.5, 1, 2, 5
    within 3, else the decades."""
    import math

    from matplotlib.ticker import FuncFormatter, SymmetricalLogLocator

    lowest, highest = ax.dataLim.y0, ax.dataLim.y1
    ax.set_yscale("symlog", linthresh=linthresh)
    if 0 <= lowest < 10 * linthresh:  # a curve at 0 (a dead unit): from just below 0
        ax.set_ylim(bottom=-0.3 * linthresh, top=highest * 1.3 if highest > 0 else 1)
    low, high = ax.get_ylim()
    decades = math.log10(max(high, linthresh) / max(low, linthresh))
    steps = ((0.5, range(1, 10)), (1.5, (1, 2, 3, 5)), (3, (1, 2, 5)), (math.inf, (1,)))
    subs = next(subs for most, subs in steps if decades < most)
    ax.yaxis.set_major_locator(SymmetricalLogLocator(base=10, linthresh=linthresh,
                                                     subs=[float(s) for s in subs]))  # fmt: skip
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def group_styles(groups: dict) -> dict:
    """{setting: (colour, dash)}: each setting its own; where each setting trains one loss of
    its own (loss=..., arm=...), that loss's colour of every figure (figures.STYLE), and
    otherwise colours that are no loss's (model=clamped in CE's green read as cross-entropy)."""
    losses = {g: {j["loss"] for j in members} for g, members in groups.items()}
    by_loss = len({frozenset(v) for v in losses.values()}) == len(groups) and all(
        len(v) == 1 and next(iter(v)) in STYLE for v in losses.values()
    )
    palette = COLOURS if by_loss else OTHERS
    styles = {}
    for i, group in enumerate(sorted(groups)):
        colour, dash = palette[i % len(palette)], DASHES[i // len(palette) % len(DASHES)]
        styles[group] = (STYLE[next(iter(losses[group]))]["color"] if by_loss else colour, dash)
    return styles


def draw_sweep(sweep_dir, out_dir) -> str:
    """A PNG of the sweep's curves in out_dir; returns its path."""
    fig = sweep_figure(sweep_dir)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"sweep_{os.path.basename(os.path.normpath(sweep_dir))}.png")
    fig.savefig(path, dpi=90)  # not figures.save: its tight_layout would undo the legend's room
    plt.close(fig)
    return path


def sweep_figure(sweep_dir):
    """The matplotlib figure of the sweep's curves, laid out (draw_sweep saves it)."""
    jobs = read_sweep(sweep_dir)
    keys = _contrast(jobs)
    groups = defaultdict(list)
    for job in jobs:
        groups[_label(job, keys)].append(job)
    panels = _panels(jobs)
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(11, 3.3 * rows + 0.9), squeeze=False)
    axes = axes.flatten()
    styles = group_styles(groups)
    for i, (group, members) in enumerate(sorted(groups.items())):
        colour, dash = styles[group]
        label = f"{group} (n={len(members)})"
        for subset in _by_data_set(members, jobs):  # the mean of each data set
            for ax, (tag, _, which) in zip(axes, panels):
                runs = [j["scalars"] for j in subset if which(j)]
                _draw(ax, tag, runs, colour, dash, label, MARKERS[i % len(MARKERS)])
            label = None  # once in the legend
    for ax, (tag, title, _) in zip(axes, panels):
        ax.set_title(title, fontsize=10)
        if tag.startswith("nll-kl"):
            (_line_of_equality if tag == "nll-kl" else _residual_axis)(ax)
            continue
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if tag in ("diag/dz_abs", "kl/val"):  # symlog: an exact 0 (a dead unit) still shows
            symlog_axis(ax)
        if tag == "accuracy/val":
            _accuracy_axis(ax)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    name = os.path.basename(os.path.normpath(sweep_dir))
    contrast = ", ".join(keys) or "one setting"
    means = "the mean of each data set" if _kl(jobs) else "the mean"
    fig.suptitle(f"{name}: contrast {contrast}; thin lines one run each, thick {means}")
    ncol = max(1, min(len(labels), 4, 110 // (max(map(len, labels), default=1) + 6)))  # fits
    fig.legend(handles, labels, loc="upper center", ncol=ncol, fontsize=9,
               bbox_to_anchor=(0.5, 1 - 0.45 / fig.get_figheight()), frameon=False)  # fmt: skip
    legend_rows = -(-len(labels) // ncol)
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.35 + 0.25 * legend_rows) / fig.get_figheight()))
    return fig
