"""The Python API, for a notebook: `run(...)` and `sweep(...)` are the command line in-process.

Each call is `mlrefresh <overrides>` (or `mlrefresh -m <overrides>`) run in this process, on the
packaged configs: the same validation, the same folders and files under `outputs/` (or
`run_dir` / `sweep_dir`), the same log lines. Where the command would end with an `error:` line
and a non-zero exit code, the call raises `CommandFailed` with that line (a run folder that
holds files already is refused, as on the command line, not read back). What a command changes
in its process (argv, signal handlers, logging handlers, Hydra's global state) is put back.

Example:
    >>> import mlrefresh
    >>> r = mlrefresh.run("loss=square", "model=logistic")                   # doctest: +SKIP
    >>> r.metrics["accuracy/val"], r.history["loss/val"][-1], r.run_dir      # doctest: +SKIP
    >>> rows = mlrefresh.sweep("loss=square,ce", "seed=1,2")                 # doctest: +SKIP
    >>> [(row["loss"], row["nll/val"]) for row in rows]                      # doctest: +SKIP
"""

import contextlib
import csv
import functools
import io
import json
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from mlrefresh.errors import CommandFailed

__all__ = ["Run", "load_model", "run", "sweep"]


@dataclass
class Run:
    """A finished run: its folder, final metrics, per-epoch history (each metric's values,
    epoch 1 first: `history["loss/train"]`, `history["loss/val"]`, ...) and resolved config."""

    run_dir: Path
    metrics: dict
    history: dict
    config: dict

    @functools.cached_property
    def model(self):
        """The trained model (model.pt), on the CPU."""
        return load_model(self.run_dir)


def load_model(run_dir):
    """The trained model of a finished run's folder (its model.pt), on the CPU."""
    import torch

    from mlrefresh.models import build_model, model_options

    saved = torch.load(Path(run_dir) / "model.pt", map_location="cpu", weights_only=False)
    if "shape" not in saved:
        raise CommandFailed(f"{run_dir}/model.pt was written by an older mlrefresh; run again", 2)
    cfg = saved["config"]["model"]
    model = build_model(cfg["name"], saved["shape"]["num_features"],
                        saved["shape"]["num_classes"], **model_options(cfg))  # fmt: skip
    model.load_state_dict(saved["state_dict"])
    return model.eval()


class _Tee(io.TextIOBase):
    """stderr as it is, keeping the `error:` lines the command writes."""

    def __init__(self, stream) -> None:
        self.stream, self.error_lines = stream, []

    def write(self, text: str) -> int:
        self.error_lines += [line for line in text.splitlines() if line.startswith("error: ")]
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def _in_process(argv):
    """The command's argv; afterwards, what it changed in the process put back."""
    from hydra.core.global_hydra import GlobalHydra

    saved = (sys.argv, sys.stderr, list(logging.root.handlers), logging.root.level,
             {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)})  # fmt: skip
    GlobalHydra.instance().clear()
    sys.argv = argv
    sys.stderr = tee = _Tee(sys.stderr)
    try:
        yield tee
    finally:
        for handler in logging.root.handlers:
            if handler not in saved[2]:
                handler.close()
        sys.argv, sys.stderr = saved[0], saved[1]
        logging.root.handlers[:] = saved[2]
        logging.root.setLevel(saved[3])
        for signum, handler in saved[4].items():
            signal.signal(signum, handler)
        GlobalHydra.instance().clear()


def _command(args) -> tuple:
    """Run `mlrefresh <args>` in this process: (exit code, its first error line, its Session)."""
    from mlrefresh.__main__ import main
    from mlrefresh.runs import session

    with _in_process(["mlrefresh", *map(str, args)]) as tee:
        try:
            code = main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    first = tee.error_lines[0].removeprefix("error: ") if tee.error_lines else None
    return code, first, session.current()


def _options(config_dir) -> list[str]:
    return ["--config-dir", str(config_dir)] if config_dir is not None else []


def run(*overrides: str, run_dir=None, config_dir=None) -> Run:
    """One run, as `mlrefresh <overrides>`; CommandFailed with the error line if it fails.
    run_dir: its folder (new or empty; default outputs/runs/<date>/<time>); config_dir: a
    folder of your own configs (experiment files ...), composed over the packaged ones."""
    from mlrefresh.runs.console import hydra_quote

    where = [f"hydra.run.dir={hydra_quote(str(run_dir))}"] if run_dir is not None else []
    code, error, done = _command([*_options(config_dir), *overrides, *where])
    if code != 0 or not done.runs:
        raise CommandFailed(error or f"the run ended with exit code {code}", code or 2)
    return _read_run(Path(done.runs[-1]))


def _read_run(folder: Path) -> Run:
    import torch

    last = torch.load(folder / "last.pt", map_location="cpu", weights_only=False)
    epochs = last["history"]
    history = {key: [e.get(key) for e in epochs] for key in epochs[-1]}
    metrics = json.loads((folder / "metrics.json").read_text())
    return Run(run_dir=folder, metrics=metrics, history=history, config=last["config"])


def _number(text: str):
    """A summary cell as a value: "" is None, "3" is 3, "0.1" is 0.1, "sgd" stays."""
    if text == "":
        return None
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return kind(text)
    return text


def sweep(*overrides: str, sweep_dir=None, config_dir=None) -> list[dict]:
    """A sweep, as `mlrefresh -m <overrides>`: the rows of its summary.csv (one per job, its
    status, folder, settings and final metrics; numbers as floats). Jobs that failed are rows
    with their status; CommandFailed when the sweep did not run (its error line)."""
    from mlrefresh.runs.console import hydra_quote

    where = [f"hydra.sweep.dir={hydra_quote(str(sweep_dir))}"] if sweep_dir is not None else []
    code, error, done = _command(["-m", *_options(config_dir), *overrides, *where])
    summary = Path(done.sweep or "") / "summary.csv"
    if done.sweep is None or not summary.is_file():
        raise CommandFailed(error or f"the sweep ended with exit code {code}", code or 2)
    with open(summary, newline="") as f:
        rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
    for row in rows:
        row["folder"] = str(Path(done.sweep).resolve() / str(row["folder"]))
    return rows
