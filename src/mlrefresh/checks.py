"""One-line checks of config values: numbers, whole numbers, choices, switches, unknown keys.

Every group's checker (model, optim, trainer, dataset, ...) is written with these, so that a
value of the wrong type, null, nan, inf, a negative or an absurdly large number is refused in
the same words everywhere, before any work: `<key>=<value> must be <what>, e.g. <example>`.

Example:
    >>> from mlrefresh.checks import number
    >>> number("optim.lr", 0.1, low=0, low_open=True)
    0.1
    >>> number("optim.lr", float("inf"), low=0, low_open=True)
    Traceback (most recent call last):
    ...
    mlrefresh.errors.ConfigError: optim.lr=inf must be a finite number > 0
"""

import functools
import math
from collections.abc import Iterable, Mapping

from mlrefresh.errors import ConfigError

__all__ = ["MAX_SEED", "choice", "flag", "flatten", "known_keys", "number", "rule", "whole"]

MAX_SEED = 2**63 - 1  # torch seeds are 64-bit


def _show(value):
    """As the user typed it: OmegaConf makes `optim.lr=-1` the float -1.0; it is shown as -1."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return "null" if value is None else repr(value) if isinstance(value, str) else str(value)


def _fail(key, value, what, example):
    hint = f", e.g. {key}={example}" if example is not None else ""
    raise ConfigError(f"{key}={_show(value)} must be {what}{hint}")


def number(key, value, *, low=None, high=None, low_open=False, high_open=False, example=None):
    """A finite real number within [low, high] (open ends where asked); returns it as float."""
    if low is None:
        what = "a finite number"
    else:
        what = f"a finite number {'>' if low_open else '>='} {low:g}"
    if high is not None:
        what += f" and {'<' if high_open else '<='} {high:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(key, value, what, example)
    if not math.isfinite(value):
        _fail(key, value, what, example)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        _fail(key, value, what, example)
    return float(value)


def whole(key, value, *, low=None, high=None, example=None):
    """A whole number within [low, high]; returns it."""
    if low is not None and high is not None:
        what = f"a whole number from {low} to {high}"
    elif low is not None:
        what = f"a whole number >= {low}"
    else:
        what = "a whole number"
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(key, value, what, example)
    if (low is not None and value < low) or (high is not None and value > high):
        _fail(key, value, what, example)
    return value


def choice(key, value, choices: Iterable[str]):
    """One of the given names; returns it."""
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{key}={_show(value)} is not one of {', '.join(choices)}")
    return value


def flag(key, value):
    """true or false; returns it."""
    if not isinstance(value, bool):
        _fail(key, value, "true or false", None)
    return value


def known_keys(group: str, given: Mapping, known: Iterable[str]) -> None:
    """Refuse a key that `group` does not have (a typo, or `+group.key=...` on the command line),
    naming the keys it has."""
    known = sorted(known)
    unknown = sorted(set(given) - set(known))
    if unknown:
        where = f"{group}.{unknown[0]}" if group else unknown[0]
        owner = f"{group} has" if group else "the config has"
        raise ConfigError(
            f"unknown key {where}; {owner} only {', '.join(known)} (check the spelling)"
        )


def rule(check, **limits):
    """A config key's range, for its annotation in the schema (schema.py):
    `epochs: Annotated[int, rule(whole, low=1)] = 20` runs whole("trainer.epochs", value, low=1)
    in the validation pass."""
    return functools.partial(check, **limits)


def flatten(tree: Mapping, prefix: str = "") -> dict:
    """{"optim": {"lr": 0.1}} -> {"optim.lr": 0.1}: a config's keys as the command line spells
    them."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
