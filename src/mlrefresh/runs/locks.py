"""A run folder held by one process at a time: an advisory lock (flock) on the folder itself.

The lock belongs to an open descriptor of the folder, so it ends when the process ends, however
it ends (SIGKILL, the out-of-memory killer, a node that dies takes its locks with it): a folder is
never left stuck. A second process that asks for a held folder gets an OutputError in one line.
flock is POSIX: where Python has no `fcntl` (Windows), folders are not held (a second process in
one folder is not refused there); everything else works.

Example:
    >>> import tempfile
    >>> from mlrefresh.runs.locks import hold, let_go
    >>> folder = tempfile.mkdtemp()
    >>> hold(folder), hold(folder)  # taken, then already this process's
    (True, False)
    >>> let_go(folder)
"""

import os
from pathlib import Path

from mlrefresh.errors import OutputError
from mlrefresh.runs.checkpoint import remove_leftovers
from mlrefresh.runs.session import current

__all__ = ["hold", "let_go"]


def _key(path) -> Path:
    return Path(os.path.abspath(path))


def hold(folder) -> bool:
    """Hold `folder` for this process until let_go (or the process ends); True if this call
    took it. OutputError when another process holds it."""
    key, held = _key(folder), current().held
    if key in held:
        return False
    try:
        import fcntl  # POSIX only
    except ImportError:  # Windows: not held (see the module docstring)
        held[key] = None
        return True
    fd = os.open(key, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutputError(
            f"{folder} is in use by another run (a process that is still running); wait for it "
            "to end, or choose another folder"
        ) from None
    held[key] = fd
    remove_leftovers(key)  # a killed writer's temporary files: ours now, and no one writes them
    return True


def let_go(folder=None) -> None:
    """Stop holding `folder` (every folder this process holds when None)."""
    held = current().held
    for key in [_key(folder)] if folder is not None else list(held):
        fd = held.pop(key, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor ends the lock
