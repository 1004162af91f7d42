"""The sweep summary: `summary.csv` with one row per job, and a table with the best first.

Every job of a multirun leaves a record, `<sweep dir>/.jobs/<job num>.json`, written by the
job's own process (so it works under every launcher and sweeper: basic, joblib, submitit,
Optuna): its overrides, status (ok, refused, diverged, failed, interrupted), exit code, error
line, folder and final metrics. At the end of the multirun `SweepSummary.on_multirun_end` (in
the process that started the sweep) gathers the records into `summary.csv`, prints the error
lines of failed jobs that went elsewhere (submitit's log files), prints the table and sets the
sweep's exit code (the worst job's). The table (table.py) has one row per configuration, the
seeds aggregated: n, mean ± std of accuracy/val and of nll/val, best first; the sweep's HParams
table for TensorBoard is hparams.py's, its curves over seeds seed_curves.py's.
`scripts/summarize.py DIR ...` prints the same table for folders that exist already.

Example:
    >>> import os, tempfile
    >>> from mlrefresh.sweeps.summary import collect
    >>> run = tempfile.mkdtemp()  # a run folder: its metrics.json is its record
    >>> _ = open(os.path.join(run, "metrics.json"), "w").write('{"accuracy/val": 0.9}')
    >>> [(r["status"], r["accuracy/val"]) for r in collect([run])]
    [('ok', 0.9)]
"""

import contextlib
import csv
import io
import os
import sys
from pathlib import Path

from hydra.experimental.callback import Callback

from mlrefresh.errors import UserError
from mlrefresh.runs.checkpoint import save_atomically, save_json
from mlrefresh.runs.records import (
    parse_overrides,
    read_metrics,
    read_overrides,
    read_record,
    skip_damaged,
)
from mlrefresh.runs.rundir import JOBS
from mlrefresh.runs.session import current
from mlrefresh.sweeps.hparams import write_hparams_table
from mlrefresh.sweeps.seed_curves import write_seed_curves
from mlrefresh.sweeps.table import SEEDS, config_of, table

__all__ = ["SEEDS", "SweepSummary", "collect", "parse_overrides", "read_overrides", "table",
           "write_csv", "write_record"]  # fmt: skip

METRICS = ["accuracy/val", "nll/val", "loss/val", "accuracy/train", "loss/train", "kl/val"]
EXTRA = ["epochs", "train_seconds", "device"]


def _stderr_id():
    """Which file this process's stderr is: a job whose error line went to the same file as
    the launching process's (basic launcher, joblib workers) was shown on that console. A
    stderr that is no file (captured in memory) is known by its process and object."""
    try:
        st = os.fstat(sys.stderr.fileno())
        return [st.st_dev, st.st_ino]
    except (OSError, ValueError, AttributeError):
        return ["stream", os.getpid(), id(sys.stderr)]


def _record_path(hydra) -> str:
    folder = os.path.abspath(hydra.runtime.output_dir)
    return os.path.join(os.path.dirname(folder), JOBS, f"{hydra.job.num}.json")  # one level up


def write_record(status: str, exit_code: int = 0, error=None, metrics=None) -> None:
    """The record of the job running in this process (cli.run_job says how it ended), if it is
    part of a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra = HydraConfig.get()
    if hydra.mode != RunMode.MULTIRUN:
        return
    folder = os.path.abspath(hydra.runtime.output_dir)
    outcome = {"status": status, "exit_code": exit_code, "error": error,
               "metrics": dict(metrics or {})}  # fmt: skip
    record = {"job": hydra.job.num, "overrides": list(hydra.overrides.task), **outcome,
              "folder": folder if os.path.isdir(folder) else None,
              "stderr": _stderr_id()}  # fmt: skip
    path = _record_path(hydra)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_json(path, record)
    except (OSError, UserError) as exc:  # the job's own results are saved; say what is missing
        print(f"warning: job {hydra.job.num} is missing from the sweep summary: {exc}",
              file=sys.stderr, flush=True)  # fmt: skip


def _row(record: dict) -> dict:
    row = {**record, "overrides": parse_overrides(record.get("overrides"))}
    row.update(record.get("metrics") or {})
    folder = record.get("folder")
    if row["status"] != "ok" and folder and os.path.exists(os.path.join(folder, "metrics.json")):
        for now in skip_damaged(_run_row, Path(folder)):
            row.update(now)  # resumed since: finished now (status, exit code)
    return row


def _run_row(folder: Path) -> dict:
    """A run folder without a record (a single run, an older sweep)."""
    row = {"overrides": {}, "status": "unfinished", "exit_code": 1,  # at a sweep's end: killed
           "folder": str(folder), "error": None}  # fmt: skip
    if (folder / ".hydra" / "overrides.yaml").exists():
        row["overrides"] = read_overrides(folder)
    metrics = folder / "metrics.json"
    if metrics.exists():
        row.update(read_metrics(metrics), status="ok", exit_code=0)
    return row


def _is_run(folder: Path) -> bool:
    return (folder / "metrics.json").exists() or (folder / ".hydra" / "config.yaml").exists()


def _here(record: dict, sweep: Path) -> dict:
    """A record's job folder where it is now: beside its .jobs/, in a sweep folder that may have
    been moved or copied since the record was written."""
    if isinstance(record.get("folder"), str):
        record["folder"] = str((sweep / Path(record["folder"]).name).absolute())
    return record


def collect(folders) -> list[dict]:
    """Rows for every job record and every run folder found under `folders`."""
    rows = []
    for top in map(Path, folders):
        for here, subdirs, _ in os.walk(top):
            here = Path(here)
            if (here / JOBS).is_dir():  # a sweep: its records, then folders without one
                records = [p for p in (here / JOBS).glob("*.json") if p.stem.isdigit()]
                records.sort(key=lambda p: int(p.stem))
                found = [
                    _row(_here(r, here)) for p in records for r in skip_damaged(read_record, p)
                ]
                known = {r.get("folder") for r in found}
                deeper = []  # a custom hydra.sweep.subdir (`${hydra.job.num}/run`): records below
                for name in sorted(subdirs):
                    folder = here / name
                    if str(folder.absolute()) in known or name.startswith("."):  # .jobs, .submitit
                        continue
                    if _is_run(folder):
                        found += skip_damaged(_run_row, folder)  # killed, or still running
                    else:
                        deeper.append(name)
                rows += found
                subdirs[:] = deeper
            elif _is_run(here):
                rows += skip_damaged(_run_row, here)
                subdirs.clear()
            else:
                subdirs.sort()
    return rows


def write_csv(rows, path, relative_to=None) -> None:
    """summary.csv: one row per job, the overridden keys as columns, then status and metrics."""
    keys = list(dict.fromkeys(k for r in rows for k in r["overrides"]))
    columns = ["job", *keys, "status", "exit_code", *METRICS, *EXTRA, "folder", "error"]
    base = relative_to or os.getcwd()

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(columns)
            for r in rows:
                folder = r.get("folder")
                folder = os.path.relpath(folder, base) if folder else ""
                cells = [r.get("job", ""), *(r["overrides"].get(k, "") for k in keys),
                         r["status"], r["exit_code"]]  # fmt: skip
                cells += [r.get(k) for k in METRICS + EXTRA] + [folder, r.get("error") or ""]
                out.writerow(["" if c is None else c for c in cells])

    save_atomically(str(path), write)


class SweepSummary(Callback):
    """Hydra callback (configs/train.yaml, hydra.callbacks): a record per job, and at the end
    of the multirun summary.csv, the failed jobs' errors, the table and the exit code."""

    def on_job_end(self, config, job_return, **kwargs) -> None:
        """A job of a multirun that ended in an exception run_job did not say (a bug: not a
        UserError) has no record yet: this writes it. A single run has no record (nor a job
        number to name one by)."""
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra = HydraConfig.get()
        if hydra.mode != RunMode.MULTIRUN:
            return
        if job_return.status.name == "FAILED" and not os.path.exists(_record_path(hydra)):
            try:  # a failed job's return_value raises its exception (and says so: held back)
                with contextlib.redirect_stderr(io.StringIO()):
                    job_return.return_value  # noqa: B018
            except Exception as exc:  # noqa: BLE001 (the bug, recorded)
                write_record("failed", 1, f"{type(exc).__name__}: {exc}")

    def on_multirun_end(self, config, **kwargs) -> None:
        if release := getattr(sys.stderr, "release", None):  # held between jobs (RunFolders)
            release()  # the failed jobs' lines below come before the table, as they are printed
        sweep_dir = Path(str(config.hydra.sweep.dir))
        rows = collect([sweep_dir])  # records one level down (or deeper: a custom subdir)
        if not rows:
            return
        where = sweep_dir / "summary.csv"
        try:
            write_csv(rows, where, relative_to=sweep_dir)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            current().codes.append(exc.exit_code)
            where = "not written"
        write_hparams_table(sweep_dir, [(config_of(r), r) for r in rows])
        write_seed_curves(sweep_dir, rows)
        for r in rows:
            shown = r.get("stderr") is not None and r.get("stderr") == _stderr_id()
            if r["status"] != "ok" and not shown and r.get("error"):
                overrides = " ".join(f"{k}={v}" for k, v in r["overrides"].items())
                print(f"job {r['job']} ({overrides}) {r['status']}: error: {r['error']}",
                      file=sys.stderr, flush=True)  # fmt: skip
        current().codes.append(max(r["exit_code"] for r in rows))
        bad = sum(r["status"] != "ok" for r in rows)
        failed = f", {bad} failed" if bad else ""
        jobs = f"{len(rows)} job{'s' if len(rows) != 1 else ''}"
        print(f"\n{jobs}{failed}; summary: {where}\n{table(rows)}", flush=True)
