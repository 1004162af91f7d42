"""Puts mlrefresh's config schema (src/mlrefresh/schema.py) into Hydra's ConfigStore.

Hydra imports every module of the `hydra_plugins` namespace package when it starts (as it
does for its own launchers' configs), so the schema is there before any config is composed:
`python scripts/train.py`, Hydra's compose API in tests and notebooks, the launchers' jobs.

Example:
    >>> from hydra.core.config_store import ConfigStore
    >>> "sgd.yaml" in ConfigStore.instance().repo["schema"]["optim"]
    True
"""

from mlrefresh.schema import register

register()
