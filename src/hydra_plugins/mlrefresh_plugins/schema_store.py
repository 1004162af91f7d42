"""Puts mlrefresh's config schema (src/mlrefresh/schema.py) into Hydra's ConfigStore, and its
folder resolvers (`unique_dir`: mlrefresh.runs.rundir, `unique_subdir`: .job_folders) into
OmegaConf.

Hydra imports every module of the `hydra_plugins` namespace package when it starts (as it
does for its own launchers' configs), so both are there before any config is composed:
`python scripts/train.py`, Hydra's compose API in tests and notebooks, another app on the
project's configs, the launchers' jobs. The resolvers import the run layer at first use only.

Example:
    >>> from hydra.core.config_store import ConfigStore
    >>> from omegaconf import OmegaConf
    >>> "sgd.yaml" in ConfigStore.instance().repo["schema"]["optim"]
    True
    >>> OmegaConf.has_resolver("unique_subdir")
    True
"""

from omegaconf import OmegaConf

from mlrefresh.schema import register


def _resolver(name: str):
    def resolve(*args):
        from mlrefresh.runs import job_folders, rundir

        return getattr(rundir if name == "unique_dir" else job_folders, name)(*args)

    resolve.__name__ = name
    return resolve


register()
for _name in ("unique_dir", "unique_subdir"):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver(_name), use_cache=True)
