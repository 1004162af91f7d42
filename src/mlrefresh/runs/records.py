"""The files a sweep summary reads back, checked as they are read: a job's record
(`.jobs/<n>.json`), a run's `metrics.json` and Hydra's `.hydra/overrides.yaml` and
`.hydra/config.yaml`.

A file that cannot be read or has the wrong shape (cut short, emptied, edited by hand, left by
another version) raises `Damaged`, which names the file; readers of many files (summary.collect,
curves.read_sweep) call them through `skip_damaged`: one warning line, and on with the rest.

Example:
    >>> import os, tempfile
    >>> from mlrefresh.runs.records import Damaged, read_metrics
    >>> path = os.path.join(tempfile.mkdtemp(), "metrics.json")
    >>> _ = open(path, "w").write('{"accuracy/val": "high"}')
    >>> try:
    ...     read_metrics(path)
    ... except Damaged as exc:
    ...     print(str(exc).split(": ", 1)[1])
    accuracy/val is 'high', not a number
"""

import json
import sys
from numbers import Real
from pathlib import Path

import yaml

from mlrefresh.errors import UserError

__all__ = ["Damaged", "parse_overrides", "read_config", "read_metrics", "read_overrides",
           "read_record", "skip_damaged"]  # fmt: skip


class Damaged(UserError):
    """A file of a run or a sweep that cannot be used; the message names it and says why."""

    def __init__(self, path, why: str):
        super().__init__(f"{path}: {why}")


def _load(path, reader):
    try:
        with open(path) as f:
            return reader(f)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        why = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Damaged(path, f"cannot be read ({why[:100]})") from None


def parse_overrides(overrides) -> dict:
    """["loss=square", "+trainer.x=1"] -> {"loss": "square", "trainer.x": "1"}"""
    pairs = (o.split("=", 1) if "=" in o else (o, "") for o in overrides or [])
    return {k.lstrip("+~"): v for k, v in pairs}


def read_overrides(folder) -> dict:
    """A run folder's command-line overrides (Hydra's .hydra/overrides.yaml) as a dict."""
    path = Path(folder) / ".hydra" / "overrides.yaml"
    overrides = _load(path, yaml.safe_load)
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise Damaged(path, "not a list of overrides")
    return parse_overrides(overrides)


def read_config(folder) -> dict | None:
    """A run folder's resolved config (Hydra's .hydra/config.yaml) as flat keys, as the command
    line spells them ({"optim.lr": 0.1, ...}); None where the folder has none."""
    from mlrefresh.checks import flatten

    path = Path(folder) / ".hydra" / "config.yaml"
    if not path.exists():
        return None
    config = _load(path, yaml.safe_load)
    if not isinstance(config, dict):
        raise Damaged(path, "not a config")
    return flatten(config)


def read_metrics(path) -> dict:
    """A run's metrics.json: a mapping whose metrics are numbers (or null)."""
    metrics = _load(path, json.load)
    if not isinstance(metrics, dict):
        raise Damaged(path, "not a mapping of metrics")
    for key, value in metrics.items():
        numeric = "/" in key or key in ("epochs", "train_seconds")
        if numeric and value is not None and not isinstance(value, Real):
            raise Damaged(path, f"{key} is {value!r}, not a number")
    return metrics


def read_record(path) -> dict:
    """A job's record in a sweep's .jobs/ (summary.write_record)."""
    record = _load(path, json.load)
    if not isinstance(record, dict):
        raise Damaged(path, "not a job record")
    checks = {"status": str, "exit_code": int, "overrides": list}
    for key, kind in checks.items():
        if not isinstance(record.get(key), kind) or isinstance(record.get(key), bool):
            raise Damaged(path, f"its {key} is {record.get(key)!r}")
    if not all(isinstance(o, str) for o in record["overrides"]):
        raise Damaged(path, "its overrides are not a list of overrides")
    if not isinstance(record.get("folder"), (str, type(None))):
        raise Damaged(path, f"its folder is {record.get('folder')!r}")
    metrics = record.get("metrics") or {}
    if not isinstance(metrics, dict) or not all(
        v is None or isinstance(v, (Real, str)) for v in metrics.values()
    ):
        raise Damaged(path, "its metrics are not numbers")
    return record


def skip_damaged(read, *args) -> list:
    """[read(*args)], or [] with one warning line on stderr naming the damaged file."""
    try:
        return [read(*args)]
    except Damaged as exc:
        print(f"warning: skipped {exc}", file=sys.stderr, flush=True)
        return []
