"""Resume a stopped sweep: the same command again runs only what is missing.

Before its first job, a sweep writes what its command was, `<sweep dir>/.jobs/sweep.json` (the
task overrides and Hydra's, atomically). Running the command again with
`hydra.sweep.dir=<that folder>` (or the short form `-m sweep.resume=<folder>`, which reads the
overrides from there) resumes the sweep in place:

- first the check (`check_same_sweep`, `check_job_configs`), before any job starts: the
  overrides must be the saved ones, each key with at least its saved values (more values add
  jobs), and every job that ran must compose to the config it ran with (configs changed since:
  refused), each refusal one line that says what differs;
- then `.jobs/resume.json` lists the job folders there are; a job whose folder is listed gets it
  back (job_folders.unique_subdir) and its own run decides (runs/run.py): a finished run returns its
  saved results, an interrupted one continues from its last.pt, one without a last.pt starts
  again. A job that was refused or never started gets a new folder.

The sweep folder is held by the process that runs the sweep (locks.py), so two resumes of one
sweep at once cannot both run: the second is refused in one line.

Example:
    python scripts/train.py -m optim.lr=0.03,0.1 seed=1,2 hydra.sweep.dir=outputs/s  # killed
    python scripts/train.py -m optim.lr=0.03,0.1 seed=1,2 hydra.sweep.dir=outputs/s  # resumes
    python scripts/train.py -m sweep.resume=outputs/s                                 # the same
    python scripts/train.py -m optim.lr=0.03,0.1 seed=1,2,3 hydra.sweep.dir=outputs/s # +2 jobs
"""

import json
import logging
import os
from pathlib import Path

from omegaconf import OmegaConf

from mlrefresh.checks import flatten
from mlrefresh.errors import ConfigError, ResumeError
from mlrefresh.runs.checkpoint import LAST, save_json
from mlrefresh.runs.console import command, hydra_quote, hydra_unquote
from mlrefresh.runs.job_folders import MANIFEST, RESUMED, swept_keys
from mlrefresh.runs.rundir import JOBS
from mlrefresh.schema import complete

__all__ = [
    "begin_sweep",
    "check_job_configs",
    "check_same_sweep",
    "read_manifest",
    "resume_argv",
    "save_manifest",
    "start_resume",
]

KEYS = ("task", "hydra")  # the manifest's two lists of overrides
log = logging.getLogger(__name__)

OWN_KEYS = ("hydra.sweep.dir", "hydra.run.dir")  # not part of what a sweep is


def save_manifest(sweep_dir, task: list[str], hydra: list[str], swept=()) -> None:
    """swept: the keys the sweep varies (its job folders' names put them first)."""
    hydra = [o for o in hydra if o.split("=", 1)[0] not in OWN_KEYS]
    os.makedirs(Path(sweep_dir) / JOBS, exist_ok=True)
    save_json(Path(sweep_dir) / JOBS / MANIFEST, {"task": list(task), "hydra": hydra,
                                                  "swept": list(swept)})  # fmt: skip


def read_manifest(sweep_dir) -> dict | None:
    """The saved command of the sweep in `sweep_dir`, or None when there is none; a manifest
    that cannot be read back as Hydra overrides is a ResumeError (one line, not a traceback)."""
    path = Path(sweep_dir) / JOBS / MANIFEST
    try:
        with open(path) as f:
            saved = json.load(f)
    except OSError:
        return None
    except ValueError:
        saved = None
    lists = isinstance(saved, dict) and all(isinstance(saved.get(k), list) for k in KEYS)
    if lists and all(isinstance(o, str) for k in KEYS for o in saved[k]):
        from hydra.errors import OverrideParseException

        try:
            _values(saved["task"] + saved["hydra"])
            return saved
        except OverrideParseException:
            pass
    raise ResumeError(
        f"cannot resume the sweep in {sweep_dir}: {path} is damaged (not the sweep's overrides "
        "as Hydra reads them); start the sweep in another folder (hydra.sweep.dir=...)"
    )


def _values(overrides: list[str]) -> dict[str, tuple[str, list[str]]]:
    """{key: (value as written, the values it sweeps)} for Hydra override strings."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    found = {}
    for o in OverridesParser.create().parse_overrides(list(overrides)):
        text = o.input_line.split("=", 1)[1] if "=" in o.input_line else ""
        try:
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else None
            values = values or [o.get_value_element_as_str()]
        except Exception:  # noqa: BLE001 (an interval, a deletion: compared as written)
            values = [text]
        found[o.get_key_element()] = (text, values)
    return found


def check_same_sweep(sweep_dir, saved: list[str], given: list[str]) -> None:
    """ConfigError when the overrides `given` are not the sweep saved in sweep_dir: a key
    added or left out, or a saved value missing (added values are new jobs)."""
    old, new = _values(saved), _values(given)
    how = (f"give its overrides again (more values add jobs), resume it as it was with "
           f"{command()} -m sweep.resume={sweep_dir}, or start a new sweep in "
           "another folder")  # fmt: skip
    for key in [*old, *(k for k in new if k not in old)]:
        if key not in new:
            why = f"it was run with {key}={old[key][0]}, which this command leaves out"
        elif key not in old:
            why = f"this command adds {key}={new[key][0]}, which it was not run with"
        elif missing := [v for v in old[key][1] if v not in new[key][1]]:
            why = (f"it was run with {key}={old[key][0]} and this command has "
                   f"{key}={new[key][0]} ({', '.join(missing)} missing)")  # fmt: skip
        else:
            continue
        raise ConfigError(f"cannot resume the sweep in {sweep_dir}: {why}; {how}")


def _job_folders(sweep_dir) -> list[Path]:
    """The folders of the jobs that ran in sweep_dir: Hydra saved their overrides and they
    trained (a last.pt or model.pt). A folder with Hydra's record alone is a job killed before
    its first epoch, maybe while Hydra wrote that record (half of it): nothing of it is kept, it
    runs again and Hydra writes its record anew."""
    top = Path(sweep_dir)
    return sorted(p for p in top.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()
                  and ((p / "last.pt").is_file() or (p / "model.pt").is_file()))  # fmt: skip


def _task(config) -> dict:
    task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    return flatten(OmegaConf.to_container(complete(task), resolve=True))


def _ran_with(folder: Path) -> tuple[list[str], dict] | None:
    """(overrides, flat config) a job ran with, from its last.pt (written whole or not at all,
    checkpoint.py); from Hydra's .hydra/ files for a job saved before last.pt kept its overrides
    (Hydra rewrites those whenever the job runs again: a kill may leave them half-written, read
    as another config). None when neither can be read (the job's own run checks its last.pt)."""
    import torch

    try:
        state = torch.load(folder / LAST, map_location="cpu", weights_only=True)
        if isinstance(state.get("overrides"), list) and isinstance(state.get("config"), dict):
            return [str(o) for o in state["overrides"]], flatten(state["config"])
    except Exception:  # noqa: BLE001 (none, or not ours: read Hydra's record instead)
        pass
    try:
        overrides = list(OmegaConf.load(folder / ".hydra" / "overrides.yaml"))
        return overrides, _task(OmegaConf.load(folder / ".hydra" / "config.yaml"))
    except Exception:  # noqa: BLE001 (damaged)
        return None


def check_job_configs(sweep_dir, compose) -> None:
    """ResumeError when a job that ran in sweep_dir would now get another config than the one it
    ran with (the config files changed since). compose(overrides): the job's config now."""
    for folder in _job_folders(sweep_dir):
        if (record := _ran_with(folder)) is None:
            continue
        overrides, ran = record
        try:
            now = _task(compose(overrides))
        except Exception as exc:  # noqa: BLE001 (Hydra's or OmegaConf's, in their words)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ResumeError(f"cannot resume the sweep in {sweep_dir}: its job {folder.name} "
                              f"no longer composes ({first})") from None  # fmt: skip
        differ = [k for k in ran if k != "trainer.resume" and now.get(k, ran[k]) != ran[k]]
        differ += [k for k in now if k not in ran]
        if differ:
            k = differ[0]
            raise ResumeError(
                f"cannot resume the sweep in {sweep_dir}: its job {folder.name} ran with "
                f"{k}={ran.get(k, '<absent>')}, and the configs now give {k}={now.get(k)} (they "
                "changed since); resume with the configs it started with, or start a new sweep"
            )


def start_resume(sweep_dir) -> int:
    """Note the job folders there are (an empty one too: made for a job that never started),
    for the jobs to find theirs; returns how many."""
    from mlrefresh.sweeps.seed_curves import FOLDER  # the sweep's curves over seeds: no job's

    names = sorted(p.name for p in Path(sweep_dir).iterdir()
                   if p.is_dir() and p.name not in (JOBS, FOLDER))  # fmt: skip
    save_json(Path(sweep_dir) / JOBS / RESUMED, names)
    return len(names)


def begin_sweep(sweep_dir, config, saved: dict | None) -> None:
    """Before a sweep's first job (rundir.RunFolders): a sweep run before in sweep_dir (`saved`
    its manifest) is checked and resumed; then the manifest is (re)written."""
    from mlrefresh.sweeps.job_configs import install

    configs = install()  # the sweep's job configs, as its launcher will get them
    given = OmegaConf.to_container(config.hydra.overrides)  # as typed: ${...} not resolved
    task, hydra = given["task"], given["hydra"]
    if saved is not None:
        check_same_sweep(sweep_dir, saved["task"], task)
        check_job_configs(sweep_dir, lambda job: configs.load_sweep_config(config, list(job)))
        n = start_resume(sweep_dir)
        log.info(f"resuming the sweep in {sweep_dir}: {n} job folder(s) from before; "
                 "finished jobs are not run again, interrupted ones continue from their "
                 "last.pt")  # fmt: skip
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None)
    params = OmegaConf.to_container(params) if params is not None else {}
    save_manifest(sweep_dir, task, hydra, swept_keys(task, params))


def resume_argv(argv: list[str]) -> None:
    """`-m sweep.resume=<folder>`: the saved overrides of that sweep, with any given here in
    place of theirs, and hydra.sweep.dir=<folder> (in place, in argv)."""
    where = [i for i, a in enumerate(argv) if i and a.startswith("sweep.resume=")]
    if not where:
        return
    folder = hydra_unquote(argv[where[-1]].split("=", 1)[1])
    if any(a.startswith("hydra.sweep.dir=") for a in argv[1:]):
        raise ConfigError(f"sweep.resume={folder} names the sweep's folder; drop "
                          "hydra.sweep.dir=... (or resume with the sweep's own command and "
                          "hydra.sweep.dir=<its folder>)")  # fmt: skip
    saved = read_manifest(folder) if folder else None
    if saved is None:
        why = "no such folder" if not os.path.isdir(folder) else "no sweep was started there"
        raise ConfigError(f"sweep.resume={folder}: {why} (no {JOBS}/{MANIFEST}); give the "
                          "folder of a sweep started with -m, e.g. sweep.resume="
                          "outputs/multirun/<date>_<time>")  # fmt: skip
    given = [a for i, a in enumerate(argv) if i and i not in where and not a.startswith("-")]
    flags = [a for a in argv[1:] if a.startswith("-")]
    keys = {o.split("=", 1)[0].lstrip("+~") for o in given}
    kept = [
        o for o in saved["hydra"] + saved["task"] if o.split("=", 1)[0].lstrip("+~") not in keys
    ]
    multirun = [] if {"-m", "--multirun"} & set(flags) else ["-m"]
    argv[1:] = [*multirun, *flags, *kept, *given, f"hydra.sweep.dir={hydra_quote(folder)}"]
