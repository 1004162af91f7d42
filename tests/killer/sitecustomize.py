"""Kill a process tree at a chosen write, for the kill-anywhere test (tests/test_kill_anywhere.py).

Python imports this module at start-up when its folder is on PYTHONPATH (every process of a
sweep: the command, joblib's workers, SLURM's jobs, which inherit the environment). It does
nothing unless MLREFRESH_KILL_UNDER names a folder; then an audit hook (sys.addaudithook, the
public way to see a process's file operations) counts the writes under that folder: a file
opened for writing, a rename, a removal, a folder made or removed. Each is logged to
MLREFRESH_KILL_LOG (one line: pid, event, path), and at the one that matches MLREFRESH_KILL_AT
the process group MLREFRESH_KILL_PGID (the command's) and this process's own are SIGKILLed:

    MLREFRESH_KILL_AT=<regex>:<n>:<how>   the n-th write in this process that matches (searched
                                          in "<event> <path>", e.g. "os.mkdir /tmp/s/seed=1")
    how = before   killed as the write starts (the file not yet opened, renamed, removed)
    how = torn     killed while it is written: at this process's next write (or exit), the
                   file opened is cut to MLREFRESH_KILL_KEEP (0-1) of its length first
    MLREFRESH_KILL_AFTER=<seconds>        killed after so many seconds, wherever it is; a
                                          command that would end sooner is killed as it ends
                                          (its atexit: everything written, not yet exited), so
                                          that a random moment is met however fast the machine

Example (a sweep killed while Hydra writes its second job's config.yaml, the file left half):
    PYTHONPATH=tests/killer MLREFRESH_KILL_UNDER=/tmp/s MLREFRESH_KILL_AT='config\\.yaml$:2:torn' \\
        python scripts/train.py -m seed=1,2 hydra.sweep.dir=/tmp/s
"""

import os

_UNDER = os.environ.get("MLREFRESH_KILL_UNDER")


def _install():
    import atexit
    import contextlib
    import re
    import signal
    import sys
    import threading

    under = os.path.abspath(_UNDER) + os.sep
    log_path = os.environ.get("MLREFRESH_KILL_LOG")
    at = os.environ.get("MLREFRESH_KILL_AT", "")
    pattern, n, how = (at.rsplit(":", 2) + ["", ""])[:3] if at else (None, "0", "")
    pattern = re.compile(pattern) if pattern else None
    keep = float(os.environ.get("MLREFRESH_KILL_KEEP", "0.5"))
    os.environ.setdefault("MLREFRESH_KILL_PGID", str(os.getpgrp()))  # the command's: inherited
    group = int(os.environ["MLREFRESH_KILL_PGID"])
    state = {"seen": 0, "torn": None, "busy": False}
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def kill(why):
        if log_path:
            with open(log_path, "a") as f:
                f.write(f"{os.getpid()} KILL {why}\n")
        for target in (group, os.getpgrp()):
            if target:
                with contextlib.suppress(OSError):
                    os.killpg(target, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    def tear_and_kill():
        path = state["torn"]
        try:
            size = os.path.getsize(path)
            os.truncate(path, int(size * keep))
        except OSError:
            pass
        kill(f"torn {path}")

    def path_of(event, args):
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int) or path is None:
                return None
            if mode is not None and not any(c in mode for c in "wax+"):
                return None
            if mode is None and not (flags or 0) & writing:
                return None
        elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree"):
            path = args[0] if event != "os.rename" else args[1]
        else:
            return None
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        path = os.path.abspath(os.fspath(path))
        return path if path.startswith(under) else None

    def hook(event, args):
        if state["busy"] or event not in ("open", "os.rename", "os.remove", "os.mkdir",
                                          "os.rmdir", "shutil.rmtree"):  # fmt: skip
            return
        path = path_of(event, args)
        if path is None:
            return
        state["busy"] = True
        try:
            if state["torn"] is not None:
                tear_and_kill()
            if log_path:
                with open(log_path, "a") as f:
                    f.write(f"{os.getpid()} {event} {path}\n")
            if pattern is not None and pattern.search(f"{event} {path}"):
                state["seen"] += 1
                if state["seen"] == int(n):
                    if how == "torn" and event == "open":
                        state["torn"] = path
                    else:
                        kill(f"before {event} {path}")
        finally:
            state["busy"] = False

    sys.addaudithook(hook)
    atexit.register(lambda: state["torn"] is not None and tear_and_kill())
    after = os.environ.get("MLREFRESH_KILL_AFTER")
    if after:
        timer = threading.Timer(float(after), kill, args=(f"after {after} s",))
        timer.daemon = True
        timer.start()
        if os.getpid() == group:  # the command itself (started in a session of its own)
            atexit.register(kill, f"at its end, before {after} s")


if _UNDER:
    _install()
