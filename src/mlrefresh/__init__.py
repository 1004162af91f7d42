"""mlrefresh: the ML refresher (maximum likelihood, cross-entropy against squared error, logistic
and softmax regression) as PyTorch experiments configured by Hydra.

From Python (a notebook), the command line in-process (runs/api.py); importing mlrefresh is cheap:
torch and Hydra load at the first call.

Example:
    >>> import mlrefresh
    >>> sorted(mlrefresh.__all__)
    ['CommandFailed', 'Run', 'load_model', 'run', 'sweep']
    >>> r = mlrefresh.run("loss=square", "model=logistic")        # doctest: +SKIP
    >>> r.history["loss/val"], r.metrics["accuracy/val"]           # doctest: +SKIP
"""

__all__ = ["CommandFailed", "Run", "load_model", "run", "sweep"]


def __getattr__(name: str):
    if name == "CommandFailed":
        from mlrefresh.errors import CommandFailed

        return CommandFailed
    if name in __all__:
        from mlrefresh.runs import api

        return getattr(api, name)
    raise AttributeError(f"module 'mlrefresh' has no attribute {name!r}")
