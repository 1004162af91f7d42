"""Print the sweep summary table for folders that exist already: sweeps, runs, or outputs/.

python scripts/summarize.py outputs/multirun/2026-11-27_10-00-00
python scripts/summarize.py outputs/ --csv all.csv      # every run and sweep, one CSV row per job

Jobs are grouped by their resolved configuration (.hydra/config.yaml), seeds (seed,
dataset.seed) aggregated: n, mean ± std of accuracy/val and nll/val, best first (see
src/mlrefresh/sweeps/summary.py). A sweep's job records
(.jobs/) give the status of every job, refused ones included; a folder without records is read
from its files (metrics.json: ok, else unfinished).
"""

import argparse
import os
import sys

from mlrefresh.errors import OutputError
from mlrefresh.sweeps import summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="sweep folders, run folders, or outputs/")
    parser.add_argument("--csv", metavar="FILE", help="also write one row per job to FILE")
    args = parser.parse_args(argv)
    missing = [f for f in args.folders if not os.path.isdir(f)]
    if missing:
        what = "not a folder" if os.path.exists(missing[0]) else "no such folder"
        print(f"error: {missing[0]}: {what}; give a sweep or run folder, e.g. "
              "outputs/multirun/<date>_<time>", file=sys.stderr)  # fmt: skip
        return 2
    target = os.path.dirname(os.path.abspath(args.csv)) if args.csv else None
    if target and not os.path.isdir(target):
        print(f"error: --csv {args.csv}: the folder {target} does not exist; give a file in an "
              "existing folder", file=sys.stderr)  # fmt: skip
        return 2
    rows = summary.collect(args.folders)
    if not rows:
        print(f"error: no runs in {', '.join(args.folders)}; give a folder that a run or a "
              "sweep (-m) wrote, e.g. outputs/", file=sys.stderr)  # fmt: skip
        return 2
    if args.csv:
        try:
            summary.write_csv(rows, args.csv)
        except OutputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    runs = f"{len(rows)} run{'s' if len(rows) != 1 else ''}"
    print(runs + (f"; summary: {args.csv}" if args.csv else ""))
    print(summary.table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
