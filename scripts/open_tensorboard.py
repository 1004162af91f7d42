"""Open TensorBoard on the latest sweep or run (make tensorboard), or on the folders given.

python scripts/open_tensorboard.py                    # the latest sweep or run
python scripts/open_tensorboard.py outputs/multirun/2026-12-06_10-00-00    # one sweep or run
python scripts/open_tensorboard.py 'outputs/multirun/2026-12-06_*'  # a glob: each by its name
python scripts/open_tensorboard.py --all              # all of outputs/
python scripts/open_tensorboard.py --port 6007        # the rest goes to TensorBoard

Over 40 runs TensorBoard ticks none of them (tick the runs to compare, or open a big sweep's
means over seeds alone: <sweep>/.over_seeds), and its HParams dashboard shows one sweep's
columns: open one sweep to see its table (src/mlrefresh/plots/logdirs.py).
"""

import argparse
import glob
import os
import sys

from mlrefresh.errors import UserError
from mlrefresh.plots.logdirs import MOST_SELECTED, count_runs, latest, tensorboard_args
from mlrefresh.sweeps.seed_curves import FOLDER


def _folders(given: list[str], outputs: str, everything: bool) -> list[str]:
    if everything:
        given = [outputs]
    if not given:
        found = latest(outputs)
        if found is None:
            raise UserError(f"no run or sweep under {outputs}/ yet; train one first (make train "
                            "or python scripts/train.py), or give a folder")  # fmt: skip
        return [str(found)]
    folders = []
    for pattern in given:
        matched = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matched or not all(os.path.isdir(m) for m in matched):
            bad = next((m for m in matched if not os.path.isdir(m)), pattern)
            raise UserError(f"{bad}: no such folder; give a sweep or run folder, e.g. "
                            f"{outputs}/multirun/<date>_<time>, or --all")  # fmt: skip
        folders += matched
    return folders


def _note(folders: list[str], runs: int) -> str | None:
    """What to do where TensorBoard will tick no run: a sweep of more than 40 jobs has its
    means over seeds (.over_seeds/, one run per configuration) to open alone."""
    if runs <= MOST_SELECTED:
        return None
    means = os.path.join(folders[0], FOLDER)
    if len(folders) == 1 and os.path.isdir(means) and count_runs(means) <= MOST_SELECTED:
        return (f"note: over {MOST_SELECTED} runs TensorBoard ticks none of them: tick the "
                "runs to compare, or open the sweep's means over seeds alone (a run per "
                f"configuration): make tensorboard ARGS={means}")  # fmt: skip
    return (f"note: over {MOST_SELECTED} runs TensorBoard ticks none of them: tick the runs to "
            "compare, or open one sweep")  # fmt: skip


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """(ours, TensorBoard's): an option not ours goes to TensorBoard with its value (the next
    word, unless it has `=` or is a flag without one)."""
    ours, theirs, words = [], [], iter(argv)
    for word in words:
        name = word.split("=", 1)[0]
        if not word.startswith("-") or name in ("--all", "--outputs", "-h", "--help"):
            ours += [word] + ([next(words, "")] if word == "--outputs" else [])
        else:
            theirs += [word] + ([next(words, "")] if "=" not in word and word != "--bind_all"
                                else [])  # fmt: skip
    return ours, theirs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", help="sweep or run folders, or globs of them")
    parser.add_argument("--all", action="store_true", help="every run under --outputs")
    parser.add_argument("--outputs", default="outputs", help="where runs are (default outputs)")
    ours, rest = _split(sys.argv[1:] if argv is None else list(argv))
    args = parser.parse_args(ours)
    try:
        folders = _folders(args.folders, args.outputs.rstrip("/") or "/", args.all)
        logdir = tensorboard_args(folders)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    runs = sum(count_runs(f) for f in folders)
    print(f"TensorBoard on {', '.join(folders)}: {runs} run{'s' if runs != 1 else ''} "
          f"(all of {args.outputs}/: make tensorboard ARGS=--all)", flush=True)  # fmt: skip
    if note := _note(folders, runs):
        print(note, flush=True)
    command = [sys.executable, "-m", "tensorboard.main", *logdir, *rest]
    os.execv(command[0], command)  # TensorBoard in this process: Ctrl-C and kill reach it


if __name__ == "__main__":
    sys.exit(main())
