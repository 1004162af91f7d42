"""The sweep table: one line per configuration, the seeds aggregated, best first.

A configuration is a run's resolved config (its .hydra/config.yaml: the default run and the
same run with `dataset=blobs` spelled out are one), without what only says where files and
data go (NOT_SETTINGS); a job refused before it had a folder is known by its overrides. The
columns are the keys in which configurations differ (a group's key only where it differs within
one choice of the group). `n` counts the finished runs, and says where runs repeat a seed
("3 runs, 1 seed": a mean over them is one seed's). summary.py prints it at a sweep's end;
scripts/summarize.py for folders that exist already.

Example:
    >>> from mlrefresh.sweeps.table import table
    >>> rows = [{"overrides": {"optim.lr": lr, "seed": s}, "status": "ok", "accuracy/val": a}
    ...         for lr, s, a in (("0.1", "1", 0.9), ("0.1", "2", 0.8), ("1", "1", 0.95))]
    >>> print(table(rows))
    optim.lr  n  accuracy/val %  nll/val
    1         1  95.00           -
    0.1       2  85.00 ± 7.07    -
    >>> print(table([{**rows[0], "folder": None} for _ in range(3)]))  # one run, three times
    n               accuracy/val %  nll/val
    3 runs, 1 seed  90.00 ± 0.00    -
"""

import statistics

from mlrefresh.runs.records import read_config, skip_damaged

__all__ = ["NOT_SETTINGS", "SEEDS", "config_of", "table"]

SEEDS = ("seed", "dataset.seed")  # aggregated over, not configurations
# keys that say where a run's files and data go or what it writes, not what it trains
NOT_SETTINGS = (*SEEDS, "trainer.resume", "trainer.tensorboard", "trainer.images",
                "trainer.image_every", "trainer.checkpoint_every", "dataset.root",
                "dataset.download", "dataset.mirrors", "dataset.checksums")  # fmt: skip


def config_of(row) -> dict | None:
    """The row's resolved config (flat keys), or None where its folder has none; read once and
    kept in the row (the table and the HParams table both use it)."""
    if "config" not in row:
        folder = row.get("folder")
        found = skip_damaged(read_config, folder) if folder else []
        row["config"] = found[0] if found else None
    return row["config"]


def _known(row) -> dict:
    """What is known of the row's run: its resolved config where its folder has one, else its
    overrides (flat keys)."""
    config = config_of(row)
    return config if config is not None else row["overrides"]


def _settings(row) -> dict:
    """What the row's run trained (_known), without NOT_SETTINGS; values as text."""
    if "settings" not in row:
        row["settings"] = {k: _text(v) for k, v in _known(row).items() if k not in NOT_SETTINGS}
    return row["settings"]


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return "null" if value is None else str(value).lower()
    return str(value)


def _swept(rows) -> list[str]:
    """The keys whose values differ between the rows that have them (all given keys for one
    row), in the order they first appear; a group's key only where it differs within one choice
    of the group (dataset.std is not a column of `dataset=blobs,xor`: each has its own)."""
    keys = list(dict.fromkeys(k for r in rows for k in _settings(r)))
    if len(rows) == 1:
        return [k for k in keys if k in rows[0]["overrides"]]

    def varies(key):  # among the rows of one choice of its group: dataset.std is xor's 0.5
        group = key.split(".")[0] + ".name"
        seen = {}
        for r in rows:
            if key in r["settings"]:
                choice = r["settings"].get(group) if key != group else None
                seen.setdefault(choice, set()).add(r["settings"][key])
        if None in seen:  # the key itself, or a row known by its overrides only
            return len(set().union(*seen.values())) > 1
        return any(len(values) > 1 for values in seen.values())

    return [k for k in keys if varies(k)]


def _mean_std(values, scale=1.0) -> str:
    values = [scale * v for v in values if v is not None]
    digits = 2 if scale != 1 else 4  # percent, or nats
    if len(values) < 2:
        return f"{values[0]:.{digits}f}" if values else "-"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _seeds(row) -> tuple:
    """The row's (seed, dataset.seed), from what is known of its run (_known)."""
    known = _known(row)
    return tuple(_text(known.get(key)) for key in SEEDS)


def _count(ok, failed) -> str:
    """The n column: finished runs, "3 runs, 1 seed" where runs repeat a seed (three `make
    train` runs are one seed, not three), then the others by status."""
    n = str(len(ok))
    seeds = len({_seeds(r) for r in ok})
    if seeds < len(ok):
        n = f"{len(ok)} runs, {seeds} seed{'s' if seeds > 1 else ''}"
    return n + (f" ({len(failed)} {', '.join(sorted(set(failed)))})" if failed else "")


def table(rows) -> str:
    """One line per configuration (seeds aggregated), best mean accuracy/val first."""
    keys = _swept(rows)  # every key in which two rows' settings differ
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault(tuple(_settings(r).get(k, "") for k in keys), []).append(r)

    def score(item):  # a record without accuracy/val (written by hand, or older) sorts last
        ok = [r.get("accuracy/val") for r in item[1] if r["status"] == "ok"]
        ok = [a for a in ok if a is not None]
        return (not ok, -statistics.mean(ok) if ok else 0)

    named = [k.removesuffix(".name") if k.count(".") == 1 else k for k in keys]
    header = [*named, "n", "accuracy/val %", "nll/val"]  # model, not model.name
    lines = []
    for values, group in sorted(groups.items(), key=score):
        ok = [r for r in group if r["status"] == "ok"]
        failed = [r["status"] for r in group if r["status"] != "ok"]
        n = _count(ok, failed)
        accuracy = _mean_std([r.get("accuracy/val") for r in ok], scale=100)
        lines.append([*values, n, accuracy, _mean_std([r.get("nll/val") for r in ok])])
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
    return "\n".join(
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip()
        for line in [header, *lines]
    )
