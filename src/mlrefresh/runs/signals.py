"""Ctrl-C (SIGINT) and SIGTERM as a request to stop, honoured where stopping is safe.

`install()` replaces Python's KeyboardInterrupt (a traceback from wherever the program happened
to be) with `Interrupted`, a BaseException that carries the signal and its exit code (130 for
SIGINT, 143 for SIGTERM). Outside `deferred()` a signal raises at once, so `finally` blocks
remove what they must (a half-downloaded `.part`, a temporary checkpoint). Inside `deferred()`
(the epoch loop, a save) the first signal only sets a flag that the code polls at safe points
(`pending()`, a plain attribute read, no system call); a second signal raises at once.

Example:
    >>> from mlrefresh.runs import signals
    >>> with signals.deferred():
    ...     signals.pending() is None
    True
"""

import contextlib
import signal

__all__ = ["Interrupted", "deferred", "ignore", "install", "pending", "raise_if_pending"]

NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class Interrupted(BaseException):  # noqa: N818 (named like KeyboardInterrupt, its sibling)
    """The run was asked to stop by a signal. `exit_code` is 128 + the signal number."""

    def __init__(self, signum: int, message: str = ""):
        self.signum = signum
        self.exit_code = 128 + int(signum)
        name = NAMES.get(signum, f"signal {signum}")
        super().__init__(message or f"interrupted ({name})")


class _State:
    requested: int | None = None
    depth = 0


def _handler(signum, frame):
    if _State.requested is not None or _State.depth == 0:
        _State.requested = signum
        raise Interrupted(signum)
    _State.requested = signum


def install() -> None:
    """Route SIGINT and SIGTERM to the handler above (main thread only, as Python requires)."""
    _State.requested = None
    for signum in NAMES:
        signal.signal(signum, _handler)


def ignore() -> None:
    """Ignore SIGINT and SIGTERM from now on: the program is exiting after an interrupt, and
    Python's shutdown puts the default handlers back, so a second Ctrl-C a moment later would
    otherwise kill the process by the signal after its message."""
    for signum in NAMES:
        signal.signal(signum, signal.SIG_IGN)


def pending() -> int | None:
    """The signal received inside deferred(), or None."""
    return _State.requested


def raise_if_pending(message: str = "") -> None:
    if _State.requested is not None:
        raise Interrupted(_State.requested, message)


@contextlib.contextmanager
def deferred():
    """Within this block a first signal is only recorded; poll pending() at safe points."""
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
