"""A sweep's job configs, each composed by Hydra once, or derived from a job that differs from
it only in plain values.

Hydra composes every job's config from the YAML files twice: the sweeper checks that the batch
composes (`validate_batch_is_legal`), then the launcher composes it again to run it; 70-100 ms
a compose here, about 1.9 s of a 12-job stacked sweep whose one run takes 2.5-2.9 s, 9 of the
14 s of `-m experiment=saturation` (50 jobs; 2026-12-02, the 2-core machine; a derived config
takes 9-15 ms, its copies included). `JobConfigs` wraps Hydra's config loader for one sweep
(`install`, before the sweep starts: Hydra hands its loader to the sweeper and the launcher
after the callbacks' on_multirun_start; a launcher's worker processes get the loader alone):
a job asked for again gets a copy of its config, and a job whose overrides differ
from a composed job's only in plain values (`seed=2` against `seed=1`, `optim.lr=0.3` against
`optim.lr=0.1`: not a config group, a dict, a list, a `+`/`~` override, hydra's own key, an
interpolation or a key that another override also reaches) is that job's config with the
changed values set as Hydra's override step sets them (OmegaConf.update, merge=True), and the
fields Hydra derives from the overrides set again (`hydra.overrides.task`,
`hydra.job.override_dirname`, `hydra.runtime.cwd`). What cannot be derived so, or fails to, is
composed by Hydra (which then says what is wrong). tests/test_job_configs.py checks derived
configs against Hydra's own, node types and flags included.

Public API only, but for one step Hydra offers no public way to take: `install` puts the
JobConfigs where Hydra takes the loader it hands to the sweeper and the launcher (the running
Hydra's `config_loader`). tests/test_job_configs.py::test_hydra_hands_the_installed_loader_on
fails, saying so, when a Hydra release stops taking it from there; the saving is in
docs/measurements.md.

Hydra's basic sweeper composes its batch only after the sweep's folder and multirun.yaml are
written, and a job that does not compose (`model=logistic,sofmax`, `optim.lr=0.1,abc`) then
ends the command in Hydra's own lines, exit code 1, the folder left behind. `check_jobs` runs
before any of that (rundir.RunFolders, with the launcher's settings): the jobs as the
basic sweeper expands them, each composed here (derived as above), the first that does not
compose refused in one line (ConfigError). The sweeper and the launcher then find them here.

Example:
    >>> from omegaconf import OmegaConf
    >>> from hydra.core.override_parser.overrides_parser import OverridesParser
    >>> parse = OverridesParser.create().parse_overrides
    >>> cfg = OmegaConf.create({"seed": 1, "model": {"lr": 0.1}, "hydra": {"runtime": {}}})
    >>> [o.input_line for o in value_changes(parse(["seed=1"]), parse(["seed=2"]), cfg)]
    ['seed=2']
    >>> value_changes(parse(["model=a"]), parse(["model=b"]), cfg) is None  # a dict: compose
    True
"""

import copy
import itertools
import os
import re

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mlrefresh.errors import ConfigError
from mlrefresh.runs.console import hydra_error_from, hydra_error_line
from mlrefresh.schema import error_line

__all__ = ["JobConfigs", "basic_sweep_jobs", "check_jobs", "install", "value_changes"]

PLAIN = (str, int, float, bool, type(None))
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"  # its _target_


def _plain_value(cfg, key: str) -> bool:
    """Whether `key` names a plain value of cfg (not a dict, a list, an interpolation or
    missing): one an override may change without composing."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, throw_on_resolution_failure=False) if parent else cfg
    if not isinstance(node, DictConfig) or leaf not in node:
        return False
    if OmegaConf.is_interpolation(node, leaf) or OmegaConf.is_missing(node, leaf):
        return False
    if node[leaf] is None:  # a value that is null, or a typed dict node set to null (no type)
        return OmegaConf.get_type(node, leaf) is type(None)
    return not OmegaConf.is_config(node[leaf])


def _related(a: str, b: str) -> bool:
    """Whether keys a and b reach one node (equal, or one inside the other)."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def value_changes(composed, wanted, cfg) -> list | None:
    """The overrides of `wanted` (parsed) to apply to `cfg`, the config Hydra composed for
    `composed` (parsed), to get `wanted`'s config; None when it must be composed."""
    if len(composed) != len(wanted):
        return None
    choices = OmegaConf.select(cfg, "hydra.runtime.choices") or {}
    changes = []
    for a, b in zip(composed, wanted):
        if a.input_line == b.input_line:
            continue
        key = b.key_or_group
        if (
            a.key_or_group != key
            or a.type != OverrideType.CHANGE
            or b.type != OverrideType.CHANGE
            or a.package is not None
            or b.package is not None
            or b.is_hydra_override()
            or b.is_sweep_override()
            or not isinstance(a.value(), PLAIN)
            or not isinstance(b.value(), PLAIN)
            or key in choices
            or not _plain_value(cfg, key)
        ):
            return None
        changes.append(b)
    for b in changes:
        if sum(_related(b.key_or_group, o.key_or_group) for o in wanted) > 1:
            return None
    return changes


class JobConfigs:
    """Hydra's config loader with `load_sweep_config` answered as the module docstring says;
    everything else is the wrapped loader's."""

    def __init__(self, loader) -> None:
        self.loader = loader
        self._parse = OverridesParser.create().parse_overrides
        self._configs: dict = {}  # (config name, overrides) -> (parsed overrides, config)

    def __getattr__(self, name):
        if name == "loader":  # unpickling: not set yet
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __getstate__(self) -> dict:  # a worker process gets the loader (configs made from
        return {"loader": self.loader}  # the schema's classes do not pickle)

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["loader"])

    def load_sweep_config(self, master_config, sweep_overrides):
        cfg = copy.deepcopy(self.composed(master_config, sweep_overrides))
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)  # as Hydra's does
        return cfg

    def composed(self, master_config, sweep_overrides):
        """The job's config as kept here, composed or derived the first time it is asked for:
        to read (check_jobs), not to change; load_sweep_config gives a copy."""
        name = master_config.hydra.job.config_name
        hydra = OmegaConf.to_container(master_config.hydra.overrides.hydra)  # as typed: ${..}
        overrides = hydra + list(sweep_overrides)
        key = (name, tuple(overrides))
        if key not in self._configs:
            try:
                wanted = self._parse(overrides)
            except Exception:  # noqa: BLE001 (Hydra's compose below says what is wrong)
                wanted = None
            cfg = self._derive(name, wanted) if wanted is not None else None
            if cfg is None:
                cfg = self.loader.load_configuration(name, overrides, run_mode=RunMode.RUN)
            self._configs[key] = (wanted if wanted is not None else self._parse(overrides), cfg)
        return self._configs[key][1]

    def _derive(self, name, wanted):
        """wanted's config derived from one kept here (value_changes), or None."""
        for (other, _), (composed, cfg) in reversed(self._configs.items()):
            changes = value_changes(composed, wanted, cfg) if other == name else None
            if changes is None:
                continue
            try:
                return _applied(cfg, changes, wanted)
            except Exception:  # noqa: BLE001 (composed instead: Hydra's own error)
                return None
        return None


def _applied(cfg, changes, wanted):
    """A copy of cfg with the changed values applied, and the fields Hydra derives from the
    overrides set as Hydra's compose sets them."""
    cfg = copy.deepcopy(cfg)
    for change in changes:  # as Hydra's override step applies a plain `key=value`
        OmegaConf.update(cfg, change.key_or_group, change.value(), merge=True)
    task = [o for o in wanted if not o.is_hydra_override()]
    cfg.hydra.overrides.task = [o.input_line for o in task]
    cfg.hydra.job.override_dirname = overrides_dirname(task, cfg.hydra.job.config.override_dirname)
    cfg.hydra.runtime.cwd = os.getcwd()
    return cfg


def overrides_dirname(task, settings) -> str:
    """hydra.job.override_dirname as Hydra makes it: the task overrides not excluded, sorted,
    joined by item_sep, each `=` written as kv_sep (hydra.job.config.override_dirname)."""
    lines = sorted(o.input_line for o in task if o.key_or_group not in settings.exclude_keys)
    return re.sub("=", settings.kv_sep, settings.item_sep.join(lines))


def _expand(parsed) -> list[list[str]]:
    """Every job's overrides, as Hydra's basic sweeper expands a command: the product of each
    key's values, the first key slowest; a later override of a key replaces an earlier one's
    values, in its place."""
    values = {}
    for o in parsed:
        key = o.get_key_element()
        if not o.is_sweep_override():
            values[key] = [f"{key}={o.get_value_element_as_str()}"]
        elif o.is_discrete_sweep():
            values[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:
            raise ValueError(f"the basic sweeper cannot sweep {o.input_line}")
    return [list(job) for job in itertools.product(*values.values())]


def install() -> JobConfigs:
    """The running Hydra's config loader wrapped in a JobConfigs (once), for this command's
    sweep: called from a callback's on_multirun_start, before Hydra hands the loader on. The
    one step on Hydra's internals (see the module docstring): a Hydra without that attribute
    gets a JobConfigs of its public loader, used for check_jobs only."""
    from hydra.core.global_hydra import GlobalHydra

    hydra = GlobalHydra.instance().hydra
    loader = getattr(hydra, "config_loader", None)
    if loader is None:
        return JobConfigs(GlobalHydra.instance().config_loader())
    if not isinstance(loader, JobConfigs):
        hydra.config_loader = loader = JobConfigs(loader)
    return loader


def basic_sweep_jobs(config, loader) -> list[list[str]] | None:
    """Each job's overrides as Hydra's basic sweeper will expand the command (its
    hydra.sweeper.params, then the command line), or None: another sweeper (its jobs are its
    own), or overrides it cannot expand (it says so itself)."""
    if OmegaConf.select(config, "hydra.sweeper._target_") != BASIC_SWEEPER:
        return None
    try:
        params = config.hydra.sweeper.get("params")
        given = [f"{k}={v}" for k, v in (params or {}).items()]
        given += OmegaConf.to_container(config.hydra.overrides.task)
        parsed = OverridesParser.create(config_loader=loader).parse_overrides(given)
        return _expand(parsed)
    except Exception:  # noqa: BLE001 (the sweeper refuses them in its own words)
        return None


def check_jobs(config, configs: JobConfigs) -> None:
    """ConfigError, in one line, for the first job of a basic sweep that does not compose
    (before the sweep writes anything; see the module docstring)."""
    for job in basic_sweep_jobs(config, configs.loader) or []:
        try:
            configs.composed(config, job)  # kept for the sweeper and the launcher: no copy here
        except Exception as exc:  # noqa: BLE001 (Hydra's or OmegaConf's refusal, said in one line)
            why = error_line(exc.__cause__) or hydra_error_from(exc) or hydra_error_line(str(exc))
            raise ConfigError(why.removeprefix("error: ")) from None
