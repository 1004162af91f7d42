"""The lecture's graphs as PNG files, and the learning curves of a sweep.

python scripts/figures.py                           # lecture graphs into outputs/figures/
python scripts/figures.py --out docs/figures        # elsewhere
python scripts/figures.py --sweep outputs/multirun/2026-11-26_14-36-25   # a sweep's curves
python scripts/figures.py --only loss_vs_z grad_vs_z                  # some graphs
"""

import argparse
import sys

try:
    from mlrefresh.errors import UserError
    from mlrefresh.plots.figures import draw_lecture
except ModuleNotFoundError as exc:
    print(f"error: {exc.name} is not installed for {sys.executable}; run `make figures`, or "
          "use .venv/bin/python scripts/figures.py", file=sys.stderr)  # fmt: skip
    sys.exit(2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/figures", help="folder for the PNG files")
    parser.add_argument("--sweep", help="a sweep folder (-m): draw its learning curves instead")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="some lecture graphs only")
    options = parser.parse_args(argv)
    try:
        if options.sweep:
            from mlrefresh.plots.curves import draw_sweep

            paths = [draw_sweep(options.sweep, options.out)]
        else:
            paths = draw_lecture(options.out, only=options.only)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(
            f"error: cannot write to {options.out} ({exc.strerror}); choose --out", file=sys.stderr
        )
        return 2
    print("\n".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
