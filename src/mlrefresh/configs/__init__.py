"""The project's Hydra configs as a Python package, `mlrefresh.configs`, so that an installed
mlrefresh finds them from anywhere: the `mlrefresh` command and `python -m mlrefresh` use
`config_path="pkg://mlrefresh.configs"`; in a checkout, scripts/train.py reads this folder
(`configs/` at the top of the checkout is a link to it).

Example:
    >>> from hydra import compose, initialize_config_module
    >>> from hydra.core.global_hydra import GlobalHydra
    >>> GlobalHydra.instance().clear()  # in a process that used Hydra before (a test run)
    >>> with initialize_config_module("mlrefresh.configs", version_base="1.3"):
    ...     compose("train", ["loss=square"]).loss.name
    'square'
"""
