"""What the terminal shows when something goes wrong: one first line `error: ...`, no traceback.

- `HeldStderr`: while Hydra composes the config (and between a sweep's jobs), what it writes to
  stderr is held back. If Hydra then gives up (an unknown option or key, an override it cannot
  parse), its message becomes `error: <what>; <what to do>` followed by Hydra's own lines, and
  the exit code 2. When the run starts, `release()` passes everything through unchanged.
- `quiet_broken_pipe()`: `python scripts/train.py | head -1` must not print a BrokenPipeError
  per log line once `head` has gone: the run goes on, its log still lands in train.log.

Example:
    >>> from mlrefresh.runs.console import hydra_error_line
    >>> hydra_error_line("In 'train': Could not find 'model/perceptron'\\n\\n"
    ...     "Available options in 'model':\\n\\tlinear\\n\\tlogistic\\n")
    'error: unknown option model=perceptron; choose one of linear, logistic'
"""

import io
import os
import re
import sys
import threading

__all__ = [
    "COMMAND",
    "SCRIPT",
    "HeldStderr",
    "command",
    "hydra_error_from",
    "hydra_error_line",
    "hydra_quote",
    "hydra_unquote",
    "sweep_without_multirun",
    "quiet_broken_pipe",
    "quiet_writer_threads",
]

_GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"
COMMAND = "MLREFRESH_COMMAND"  # how the user runs the program (set by cli.launch)
SCRIPT = "python scripts/train.py"  # a checkout's; installed: mlrefresh, python -m mlrefresh


def command() -> str:
    """How the user runs the program, for a line that says what to type next: the checkout's
    `python scripts/train.py`, or `mlrefresh` / `python -m mlrefresh` (cli.launch sets it; a
    launcher's job in another process inherits it)."""
    return os.environ.get(COMMAND) or SCRIPT


def hydra_quote(value: str) -> str:
    """A value quoted for Hydra's override grammar: a folder (`.../loss=ce,seed=1`) holds = and
    , which Hydra would otherwise read as syntax."""
    return "'" + value.replace("'", "\\'") + "'"


def hydra_unquote(value: str) -> str:
    """An override's value as the user meant it: without the quotes given for Hydra."""
    quoted = len(value) > 1 and value[0] == value[-1] and value[0] in "'\""
    return value[1:-1] if quoted else value


def _options(text, group):  # the options Hydra's message lists for the group
    block = re.search(rf"Available options in '{re.escape(group)}':\n((?:\t.*\n?)*)", text)
    return [line.strip() for line in block.group(1).splitlines()] if block else []


# the configs that the plugins of the `sweep` extra provide (pyproject.toml)
_SWEEP_EXTRA = {"hydra/launcher/joblib", "hydra/launcher/submitit_local",
                "hydra/launcher/submitit_slurm"}  # fmt: skip


def _unknown_option(group: str, option: str, options: list[str]) -> str:
    if f"{group}/{option}" in _SWEEP_EXTRA:
        return (
            f"error: {group}={option} needs its Hydra plugin, which is not installed; run "
            f'pip install -e ".[sweep]" (or make train)'
        )
    todo = f"choose one of {', '.join(options)}" if options else f"see configs/{group}/"
    return f"error: unknown option {group}={option}; {todo}"


def _cannot_parse(first: str) -> str:
    return (
        f"error: cannot parse an override ({first}); quote values with brackets, commas "
        f"or spaces in the shell, e.g. 'dataset.classes=[3,8]' (see {_GRAMMAR})"
    )


def _unknown_key(key: str) -> str:
    return f"error: unknown key {key}; check the spelling ({command()} --cfg job lists every key)"


def sweep_without_multirun(argv: list[str]) -> str | None:
    """The error line for `key=a,b` on a command line without -m, from Hydra's own parse of
    the override (its value type: a choice sweep), before Hydra composes; else None. Hydra would
    stop later with a message of its own words ("Ambiguous value for argument ...")."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType
    from hydra.errors import OverrideParseException

    if any(a in ("-m", "--multirun") for a in argv):
        return None
    words = [a for a in argv[1:] if "=" in a and not a.startswith("-")]  # the overrides
    try:
        overrides = OverridesParser.create().parse_overrides(words)
    except OverrideParseException:
        return None  # Hydra says so itself (hydra_error_from)
    for o in overrides:
        if o.value_type == ValueType.SIMPLE_CHOICE_SWEEP and not o.key_or_group.startswith("hydra"):
            return (
                f"error: {o.input_line!r} holds a comma; use -m to sweep over the values, "
                "[a,b] for a list, or quote it as a string"
            )
    return None


def hydra_error_from(exc: BaseException | None) -> str | None:
    """The one-line summary of Hydra's error from its exception's type and fields, where they
    say enough (an unknown option, an unknown key, an override it cannot parse); else None,
    and hydra_error_line reads Hydra's message."""
    from hydra.errors import ConfigCompositionException as Composition
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(exc, MissingConfigException) and exc.options is not None:
        group, _, option = str(exc.missing_cfg_file or "").rpartition("/")
        return _unknown_option(group, option, list(exc.options)) if group else None
    if isinstance(exc, OverrideParseException):
        return _cannot_parse(str(exc).strip().splitlines()[0] if str(exc).strip() else exc.override)
    key = getattr(exc.__cause__, "full_key", None) if exc is not None else None
    if isinstance(exc, Composition) and isinstance(key, str) and "." in key:
        return _unknown_key(key)
    return None


def hydra_error_line(text: str) -> str:
    """The one-line summary of a Hydra error message (what was wrong; what to do), for the
    errors whose exception says too little (see hydra_error_from)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else "Hydra could not start the run"
    if m := re.search(r"Could not find '([^']+)/([^'/]+)'", text):
        group, option = m.groups()
        return _unknown_option(group, option, _options(text, group))
    if m := re.search(r"Could not override '([^']+)'", text):
        key = m.group(1)
        if "." not in key and "No match in the defaults list" not in text:
            return f"error: unknown config group or key {key!r}; check the spelling"
        return _unknown_key(key)
    # Hydra's exception says no more than its words here (no key, no override): read them
    if m := re.search(r"An item is already at '([^']+)'", text):
        return f"error: {m.group(1)} exists already; set it without the +: {m.group(1)}=..."
    if "override_grammar" in text or "no viable alternative" in text or "mismatched" in text:
        return _cannot_parse(first)
    if "Cannot find primary config" in text:
        return f"error: {first}; the configs are in configs/, e.g. --config-name=train"
    return f"error: {first}; see Hydra's message below (HYDRA_FULL_ERROR=1 for a stack trace)"


class HeldStderr(io.TextIOBase):
    """A stand-in for sys.stderr that keeps what is written until release() or rewrite(), and
    again after hold() (rundir.RunFolders: Hydra's writes into a sweep's next job folder)."""

    def __init__(self, stream):
        self._stream = stream
        self._held: list[str] | None = []
        self.started = False  # released once: the run (or sweep) started

    @property
    def released(self) -> bool:
        return self._held is None

    def hold(self) -> None:
        self._held = [] if self._held is None else self._held

    def write(self, text):
        if self._held is None:
            return self._stream.write(text)
        self._held.append(text)
        return len(text)

    def flush(self):
        if self._held is None:
            self._stream.flush()

    def release(self) -> None:
        """Write out what was held and pass everything through from now on."""
        self.started = True
        if self._held is not None:
            held, self._held = "".join(self._held), None
            self._stream.write(held)
            self._stream.flush()

    def rewrite(self, first: str | None = None) -> bool:
        """Hydra failed before the run: print its message under an `error:` first line (`first`,
        or read from the message). Returns False when nothing was held (not Hydra's failure)."""
        held = "".join(self._held or [])
        self._held = None
        if not held.strip():
            return False
        body = held.replace("\nSet the environment variable HYDRA_FULL_ERROR=1 for a complete "
                            "stack trace.", "").rstrip()  # fmt: skip
        self._stream.write((first or hydra_error_line(body)) + "\n" + body + "\n")
        self._stream.flush()
        return True

    def drop(self) -> None:
        """Forget what was held (a message said in one line instead); pass through from now."""
        self._held = None

    def rewrite_usage(self) -> bool:
        """argparse refused the command line (its usage block, then `prog: error: what`): the
        `error:` line first, with what to do. False when nothing was held."""
        held = "".join(self._held or [])
        self._held = None
        lines = held.strip().splitlines()
        if not lines or ": error: " not in lines[-1]:
            self._stream.write(held)
            return False
        what = lines[-1].split(": error: ", 1)[1]
        self._stream.write(
            f"error: {what}; options such as --config-dir or --cfg go before the overrides, "
            f"e.g. {command()} --config-dir DIR model=softmax\n" + held
        )
        self._stream.flush()
        return True

    def isatty(self):
        return self._stream.isatty()

    def fileno(self):
        return self._stream.fileno()

    @property
    def encoding(self):
        return self._stream.encoding


class _PipeGuard:
    """stdout that, once it cannot be written (its reader is gone, a full device), points fd 1
    at /dev/null and carries on; said once on stderr unless the reader just went away."""

    def __init__(self, stream):
        self._stream = stream
        self._said = False

    def _failed(self, exc: OSError):
        if not isinstance(exc, BrokenPipeError) and not self._said:
            self._said = True
            why = exc.strerror or exc
            print(f"warning: cannot write to stdout ({why}); the run goes on, its log is in "
                  "the run folder's train.log", file=sys.stderr, flush=True)  # fmt: skip
        self._silence()

    def _silence(self):
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass

    def write(self, text):
        try:
            return self._stream.write(text)
        except OSError as exc:
            self._failed(exc)
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except OSError as exc:
            self._failed(exc)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def quiet_broken_pipe() -> None:
    """Once stdout cannot be written, drop further writes to it instead of raising. A closed
    stdout or stderr (`2>&-`: Python then has None) writes to /dev/null, so that exit codes
    stay as documented."""
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    if not isinstance(sys.stdout, _PipeGuard):
        sys.stdout = _PipeGuard(sys.stdout)


def quiet_writer_threads() -> None:
    """TensorBoard's event-writer thread prints a traceback when a write fails (a full disk)
    before the main thread reports the same error in one line: drop that thread's traceback."""
    default = threading.excepthook

    def hook(args):
        if isinstance(args.exc_value, OSError) and "Writer" in type(args.thread).__name__:
            return
        default(args)

    threading.excepthook = hook
