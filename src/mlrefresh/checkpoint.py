"""Files a run writes, written whole or not at all: a temporary name of its own, then a rename.

A kill at any moment leaves the previous file or the new one, never half of one; the temporary
name is unique (`.model.pt.<random>.tmp`), so two writers in one folder never share it, and it
is removed whatever goes wrong (a full disk, Ctrl-C). A write that fails says so in one line
(`OutputError`).

Example:
    >>> import os, tempfile
    >>> from mlrefresh.checkpoint import save_json
    >>> folder = tempfile.mkdtemp()
    >>> save_json(os.path.join(folder, "metrics.json"), {"accuracy/val": 0.99})
    >>> os.listdir(folder)
    ['metrics.json']
"""

import json
import os
import shutil
import tempfile

import torch

from mlrefresh.errors import OutputError

__all__ = ["save_atomically", "save_json", "save_torch"]


def save_atomically(path, write) -> None:
    """write(tmp_path) into a fresh temporary file beside `path`, then rename it to `path`."""
    folder, name = os.path.split(os.fspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder or ".")
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise OutputError(
            f"cannot write {path} ({why}); free some space or choose another run folder "
            "(hydra.run.dir=...)"
        ) from None
    except RuntimeError as exc:  # torch.save reports a failed write as a RuntimeError
        full = shutil.disk_usage(folder or ".").free < (1 << 20)
        why = "No space left on device" if full else str(exc).splitlines()[0]
        raise OutputError(
            f"cannot write {path} ({why}); free some space or choose another run folder "
            "(hydra.run.dir=...)"
        ) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def save_json(path, obj) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())

    save_atomically(path, write)


def save_torch(path, obj) -> None:
    save_atomically(path, lambda tmp: torch.save(obj, tmp))
