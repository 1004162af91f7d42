"""The lecture's claims, each a sweep (configs/experiment/NAME.yaml), checked on every seed.

python scripts/claims.py                        # all five: one table, exit 1 if a claim fails
python scripts/claims.py saturation xor         # some of them
python scripts/claims.py --out DIR seed=6,7     # sweeps into DIR; extra overrides replace the
                                                # experiments' own (here: other training seeds)

The sweeps go into outputs/claims/<date>_<time>/ (a new folder, -1, -2, ... when taken) under
the current folder, as a run's go into outputs/runs/, unless --out names a folder.

Each experiment runs as `python scripts/train.py -m experiment=NAME` (a real Hydra multirun), then
every job's metrics.json and last.pt (the metrics of every epoch) are read back. A claim holds
when it holds for every run (or every pair of runs on the same seeds): the table shows the
measured value as mean +- std and [min, max] over the runs.
"""

import argparse
import math
import os
import re
import subprocess
import sys
import time
from collections import defaultdict

import torch

from mlrefresh.errors import UserError
from mlrefresh.runs.rundir import unique_dir
from mlrefresh.sweeps.summary import read_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = ("saturation", "clamped", "outliers", "xor", "kl")


def load_runs(sweep_dir):
    """One dict per finished job: its overrides, final metrics and per-epoch history."""
    runs = []
    for job in sorted(os.listdir(sweep_dir)):
        folder = os.path.join(sweep_dir, job)
        last = os.path.join(folder, "last.pt")
        if not os.path.exists(last):
            continue
        overrides = read_overrides(folder)
        state = torch.load(last, weights_only=True)
        runs.append({"o": overrides, "history": state["history"], "final": state["history"][-1]})
    return runs


def _arm(runs, key, value):
    return [r for r in runs if r["o"].get(key) == value]


def _pairs(runs, key, a, b):
    """Runs of arm a and arm b on the same training and data seeds."""
    by_seeds = defaultdict(dict)
    for r in runs:
        by_seeds[(r["o"].get("seed"), r["o"].get("dataset.seed"))][r["o"].get(key)] = r
    return [(p[a], p[b]) for p in by_seeds.values() if a in p and b in p]


def row(claim, values, test):
    """(claim, measured, holds) for values that must each pass `test`."""
    if not values:
        return claim, "no runs", False
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    measured = f"{mean:.4g} +- {std:.2g} [{min(values):.4g}, {max(values):.4g}] n={len(values)}"
    return claim, measured, all(test(v) for v in values)


def saturation(runs):
    sq, ce = _arm(runs, "loss", "square"), _arm(runs, "loss", "ce")
    pairs = _pairs(runs, "loss", "square", "ce")
    return [
        row("square loss stays wrong: val accuracy <= 0.60",
            [r["final"]["accuracy/val"] for r in sq], lambda v: v <= 0.60),
        row("cross-entropy recovers: val accuracy >= 0.95",
            [r["final"]["accuracy/val"] for r in ce], lambda v: v >= 0.95),
        row("epoch 1: square |dL/dz| / CE |dL/dz| <= 0.1",
            [s["history"][0]["diag/dz_abs"] / c["history"][0]["diag/dz_abs"] for s, c in pairs],
            lambda v: v <= 0.1),
        row("epoch 1: square loss stalled (wrong, |dL/dz| < 0.01) >= 0.5",
            [r["history"][0]["diag/stalled"] for r in sq], lambda v: v >= 0.5),
    ]  # fmt: skip


def clamped(runs):
    cl, lin = _arm(runs, "model", "clamped"), _arm(runs, "model", "linear")
    return [
        row("clamped: diag/dead = 1 in every epoch (min over epochs)",
            [min(e["diag/dead"] for e in r["history"]) for r in cl], lambda v: v == 1.0),
        row("clamped does not move: val accuracy change from epoch 1",
            [abs(r["final"]["accuracy/val"] - r["history"][0]["accuracy/val"]) for r in cl],
            lambda v: v == 0.0),
        row("clamped: val accuracy <= 0.60",
            [r["final"]["accuracy/val"] for r in cl], lambda v: v <= 0.60),
        row("linear unit trains: val accuracy >= 0.90",
            [r["final"]["accuracy/val"] for r in lin], lambda v: v >= 0.90),
    ]  # fmt: skip


def outliers(runs):
    pairs = _pairs(runs, "arm", "linear_square", "logistic_ce")
    return [
        row("square loss loses >= 0.05 val accuracy to CE (same seeds)",
            [c["final"]["accuracy/val"] - s["final"]["accuracy/val"] for s, c in pairs],
            lambda v: v >= 0.05),
        row("logistic + cross-entropy: val accuracy >= 0.95",
            [c["final"]["accuracy/val"] for _, c in pairs], lambda v: v >= 0.95),
    ]  # fmt: skip


def xor(runs):
    linear = _arm(runs, "model", "logistic") + _arm(runs, "model", "softmax")
    mlp = _arm(runs, "model", "mlp")
    return [
        row("logistic/softmax: no better than a coin, nll/val >= 0.6 nats",
            [r["final"]["nll/val"] for r in linear], lambda v: v >= 0.6),
        row("logistic/softmax: val accuracy <= 0.76 (a line gets 3 of 4 clusters at best)",
            [r["final"]["accuracy/val"] for r in linear], lambda v: v <= 0.76),
        row("mlp (one hidden layer): val accuracy >= 0.95",
            [r["final"]["accuracy/val"] for r in mlp], lambda v: v >= 0.95),
    ]  # fmt: skip


def kl(runs):
    ce = _arm(runs, "loss", "ce")
    by_data = defaultdict(list)
    for r in runs:
        f = r["final"]
        data_set = (r["o"].get("dataset.seed"), r["o"].get("dataset.std"))  # the experiment's
        by_data[data_set].append(f["nll/val"] - f["kl/val"])
    spread = [max(v) - min(v) for v in by_data.values()]
    gap = [r["final"]["nll/val"] - r["final"]["kl/val"] - r["final"]["entropy/val"] for r in runs]
    return [
        row("cross-entropy drives kl/val <= 0.02 nats",
            [r["final"]["kl/val"] for r in ce], lambda v: v <= 0.02),
        row("kl/val >= 0 in every epoch of every run (min)",
            [min(e["kl/val"] for e in r["history"]) for r in runs], lambda v: v >= 0),
        row("nll - kl: one entropy per data set (spread <= 0.02 nats)", spread,
            lambda v: v <= 0.02),
        row("nll - kl - entropy/val, every run (|.| <= 0.02)", gap, lambda v: abs(v) <= 0.02),
    ]  # fmt: skip


CHECKS = {"saturation": saturation, "clamped": clamped, "outliers": outliers, "xor": xor, "kl": kl}


def _sweep(cmd, say):
    """Run the sweep, saying its progress (`say(jobs done, jobs)`) from its log lines: Hydra's
    "Launching N jobs" and each job's last line ("val accuracy ... in <folder>"). Returns the
    exit code and the output (stdout and stderr, interleaved)."""
    lines, done, total = [], 0, "?"
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        for line in p.stdout:
            lines.append(line)
            if m := re.search(r"Launching (\d+) jobs", line):
                total = m.group(1)
            elif "] - val accuracy " in line:
                done += 1
            else:
                continue
            say(done, total)
    return p.returncode, "".join(lines)


def run_experiment(name, out, overrides, say=lambda done, total: None):
    sweep = os.path.join(out, name)
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "-m", f"experiment={name}",
           f"hydra.sweep.dir={sweep}", *overrides]  # fmt: skip
    code, output = _sweep(cmd, say)
    if code != 0:
        print(f"error: experiment {name} failed (exit {code}):", file=sys.stderr)
        print(output.strip(), file=sys.stderr)
        return [(f"{name}: the sweep ran", f"exit code {code}", False)]
    return CHECKS[name](load_runs(sweep))


class Progress:
    """One line on stderr per experiment: updated in place on a terminal, else written once
    when the experiment is done (a log file gets no flood of partial lines)."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.live = stream, stream.isatty()
        self.start = time.monotonic()

    def __call__(self, text: str, final: bool = False) -> None:
        line = f"{text} ({time.monotonic() - self.start:.0f} s)"
        if self.live:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
        elif final:
            self.stream.write(line + "\n")
        self.stream.flush()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("args", nargs="*", help=f"experiments ({', '.join(EXPERIMENTS)}) and "
                        "Hydra overrides (key=value) for every sweep")  # fmt: skip
    parser.add_argument("--out", help="folder for the sweeps (default: a new "
                        "outputs/claims/<date>_<time>)")  # fmt: skip
    options = parser.parse_args(argv)
    names = [a for a in options.args if "=" not in a] or list(EXPERIMENTS)
    overrides = [a for a in options.args if "=" in a]
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        print(f"error: unknown experiment {unknown[0]!r}; choose from {', '.join(EXPERIMENTS)}",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        out = options.out or unique_dir(time.strftime("outputs/claims/%Y-%m-%d_%H-%M-%S"))
    except UserError:
        where = os.path.abspath("outputs/claims")
        print(f"error: cannot create a folder in {where} for the sweeps; run from a folder "
              "you can write to, or give --out DIR", file=sys.stderr)  # fmt: skip
        return 2
    print(f"claims: {len(names)} sweep(s) into {out}", file=sys.stderr, flush=True)
    rows, progress = [], Progress()
    for i, name in enumerate(names, 1):
        step = f"[{i}/{len(names)}] {name}"
        progress(f"{step}: starting")

        def say(done, total, step=step):
            progress(f"{step}: {done}/{total} jobs")

        found = run_experiment(name, out, overrides, say)
        holding = sum(holds for _, _, holds in found)
        progress(f"{step}: {holding} of {len(found)} claims hold", final=True)
        rows += [(name, claim, measured, holds) for claim, measured, holds in found]
    width = max(len(r[1]) for r in rows)
    print(
        f"\n{'experiment':<11} {'claim':<{width}}  {'holds':<5}  measured: mean +- std [min, max]"
    )
    for name, claim, measured, holds in rows:
        print(f"{name:<11} {claim:<{width}}  {'yes' if holds else 'NO':<5}  {measured}")
    failed = sum(not r[3] for r in rows)
    print(f"\n{len(rows) - failed} of {len(rows)} claims hold; sweeps in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
