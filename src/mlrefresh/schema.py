"""The config's schema, written once: every key's type, default and range, in the Python that
uses it. Hydra reads it from here; the YAML files only choose.

| group   | where its keys are written                                     |
|---------|----------------------------------------------------------------|
| model   | the model class's constructor keywords (models.MODELS)         |
| dataset | the loader's keywords (data.DATASETS, one module per data set) |
| optim   | SGDConfig and AdamConfig (optim.OPTIMIZERS)                    |
| trainer | `Trainer` below; `seed`: `Root` below                          |
| loss, device | a name only (losses.LOSSES, device.py)                   |

A key is a parameter or field annotated `Annotated[type, rule]`, with its default:
`epochs: Annotated[int, rule(whole, low=1, high=10**6)] = 20`. The type is what OmegaConf
enforces while Hydra composes the config (`optim.lr=abc` is refused there); the rule, a
`checks` function, is the range, run by the one validation pass (validate.py) and used to word
OmegaConf's refusal the same way (`error_line`). `register()` stores one structured config per
choice in Hydra's ConfigStore as schema/<group>/<name>, and configs/<group>/<name>.yaml starts
from it: `defaults: [/schema/<group>/<name>@_here_, _self_]`.

Example:
    >>> from mlrefresh.schema import Trainer, fields
    >>> [(f.name, f.type.__name__, f.default) for f in fields(Trainer)][:2]
    [('epochs', 'int', 20), ('batch_size', 'int', 64)]
"""

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Optional

from omegaconf import MISSING, OmegaConf

from mlrefresh import checks
from mlrefresh.checks import MAX_SEED, flag, rule, whole
from mlrefresh.errors import ConfigError

__all__ = ["GROUPS", "Field", "Root", "Trainer", "check_values", "complete", "error_line",
           "fields", "register", "structured"]  # fmt: skip


def _run_folder(key, value):
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{key}={value!r} must be a run folder, or null")


@dataclasses.dataclass
class Trainer:
    """configs/trainer/*.yaml: how long and in what batches to train, and what to write."""

    epochs: Annotated[int, rule(whole, low=1, high=10**6, example=20)] = 20
    batch_size: Annotated[int, rule(whole, low=1, example=64)] = 64
    tensorboard: Annotated[bool, rule(flag)] = True  # the event file: scalars, config, HParams
    images: Annotated[bool, rule(flag)] = True  # decision boundary / weight templates, logits
    image_every: Annotated[int, rule(whole, low=1, high=10**6, example=5)] = 10  # and 1st, last
    checkpoint_every: Annotated[int, rule(whole, low=1, high=10**6, example=1)] = 1  # last.pt
    cuda_graph: Annotated[bool, rule(flag)] = True  # on CUDA: replay the step as a CUDA graph
    # CPU threads; null: 1 for a run or a stack, a parallel launcher's job its share of the cores
    threads: Annotated[int | None, rule(whole, low=1, high=4096, example=2)] = None
    resume: Annotated[str | None, _run_folder] = None  # an earlier run's folder


@dataclasses.dataclass
class Root:
    """configs/train.yaml: the seed, and one choice per group (GROUPS)."""

    seed: Annotated[int, rule(whole, low=0, high=MAX_SEED, example=0)] = 0  # init, batch order


GROUPS = ("model", "loss", "trainer", "dataset", "device", "optim")


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    type: Any  # what OmegaConf enforces: int, float, bool, str, Optional[...], List[...]
    default: Any
    rule: Callable | None  # rule(key, value) raises a ConfigError out of range


def _plain(hint):
    """`int | None` as Optional[int] and list[str] as List[str]: the spellings OmegaConf reads.
    A flag is Any to OmegaConf, which would take 0, -1, "yes" or "off" for a bool: its rule
    (checks.flag) takes true and false only. A mapping is Any too (see below); its rule checks
    it."""
    if hint is bool:
        return Any
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return Optional[tuple(_plain(a) for a in args if a is not type(None))[0]]  # noqa: UP045
    if origin is list:
        return typing.List[_plain(args[0])]  # noqa: UP006
    if origin is dict:  # OmegaConf 2.3 fails (AttributeError) merging {a: 1} into a null Dict
        return Any
    return hint


def fields(source) -> list[Field]:
    """The keys of a dataclass, or the `Annotated` keyword parameters of a function or class
    (a model's constructor, a data set's loader), in order; none for None (a loss, a device:
    a name only)."""
    if source is None:
        return []
    target = source.func if isinstance(source, functools.partial) else source
    hints = typing.get_type_hints(target, include_extras=True)
    if dataclasses.is_dataclass(source):
        names = {f.name: f.default for f in dataclasses.fields(source)}
    else:
        params = inspect.signature(source).parameters.values()
        names = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    out = []
    for name, default in names.items():
        hint = hints.get(name)
        if typing.get_origin(hint) is Annotated:
            base, check = typing.get_args(hint)[:2]
            out.append(Field(name, _plain(base), default, check))
    return out


def structured(source, name: str | None = None) -> type:
    """The plain dataclass OmegaConf checks against: `name` first (a group's choice), then the
    keys of `source`. Its `rules` attribute maps each key to its rule."""
    keys = fields(source)
    spec = [("name", str, dataclasses.field(default=name))] if name is not None else []
    for f in keys:
        default = f.default
        if isinstance(default, (list, tuple, dict)):
            made = dataclasses.field(default_factory=lambda d=default: type(d)(d))
            spec.append((f.name, f.type, made))
        else:
            spec.append((f.name, f.type, dataclasses.field(default=default)))
    title = f"{name or getattr(source, '__name__', 'config')}_schema"
    rules = {f.name: f.rule for f in keys}
    return dataclasses.make_dataclass(title, spec, namespace={"rules": rules})


def check_values(group: str, source, values: Mapping, *, known=None) -> None:
    """Refuse a key that `source` does not have (`known`: the keys there may be; default: those
    of source, and `name` where values has one), then a value out of its range."""
    keys = {f.name: f for f in fields(source)}
    if known is None:
        known = ("name", *keys) if "name" in values else tuple(keys)
    checks.known_keys(group, values, known)
    for key, value in values.items():
        f = keys.get(key)
        if f is None or f.rule is None or (value is None and _optional(f.type)):
            continue
        f.rule(f"{group}.{key}" if group else key, value)


def _optional(hint) -> bool:
    return type(None) in typing.get_args(hint)


def _sources():
    """(group, name, source) for every choice: read from the registries, so that a new model,
    data set or optimizer is in the schema without a line here."""
    from mlrefresh.data import DATASETS
    from mlrefresh.losses import LOSSES
    from mlrefresh.models import MODELS
    from mlrefresh.optim import OPTIMIZERS

    yield from (("model", n, cls.__init__) for n, cls in MODELS.items())
    yield from (("dataset", n, d.load) for n, d in DATASETS.items())
    yield from (("optim", n, o.config) for n, o in OPTIMIZERS.items())
    yield from (("loss", n, None) for n in LOSSES)
    yield from (("device", n, None) for n in ("auto", "cpu", "cuda"))


def register() -> None:
    """Store every schema in Hydra's ConfigStore, as schema/<group>/<name>. Hydra calls it as
    it starts, wherever it composes (hydra_plugins/mlrefresh_plugins/schema_store.py).
    Idempotent."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(group="schema", name="trainer", node=structured(Trainer))
    root = structured(Root)
    spec = [(g, Any, dataclasses.field(default=MISSING)) for g in GROUPS]
    store.store(group="schema", name="root", node=dataclasses.make_dataclass(
        "root_schema", spec, bases=(root,), namespace={"rules": root.rules}))  # fmt: skip
    for group, name, source in _sources():
        node = structured(source, name)
        store.store(group=f"schema/{group}", name=name, node=node)


def error_line(exc) -> str | None:
    """OmegaConf's refusal of a value while composing (its ValidationError names the key, the
    value and the schema) worded as the validation pass words it: `optim.lr='abc' must be a
    finite number > 0, e.g. optim.lr=0.1`. None when exc is not such a refusal."""
    key, value = getattr(exc, "full_key", None), getattr(exc, "value", None)
    rules = getattr(getattr(exc, "object_type", None), "rules", None)
    if not isinstance(key, str) or not isinstance(rules, dict):
        return None
    check = rules.get(getattr(exc, "key", None))
    if check is None:
        return None
    try:
        check(key, value)
    except ConfigError as refusal:
        return str(refusal)
    return f"{key}={value!r} is not {getattr(exc, 'msg', 'valid')}"


def _group(cfg, group):
    """cfg's group, or None where it has none (`~model` leaves a missing value)."""
    if not isinstance(cfg, dict) and group in cfg and OmegaConf.is_missing(cfg, group):
        return None
    return cfg.get(group)


def _defaults(cfg):
    """((group or "", key), default) for every key of the schema that cfg lacks."""
    choices = {"": Root, "trainer": Trainer}
    for group, name, source in _sources():
        node = _group(cfg, group)
        if isinstance(node, Mapping) and node.get("name") == name and source is not None:
            choices[group] = source
    for group, source in choices.items():
        node = cfg if not group else _group(cfg, group)
        if not isinstance(node, Mapping):
            continue
        for f in fields(source):
            if f.name not in node:
                default = list(f.default) if isinstance(f.default, tuple) else f.default
                yield (group, f.name), default


def complete(cfg):
    """cfg with every key the schema has and cfg lacks set to its default: a config saved by
    an earlier version (a resumed run's), or one written by hand. cfg itself when it lacks
    nothing (a config Hydra composed); a group whose choice is unknown is left to the
    validation pass."""
    missing = list(_defaults(cfg))
    if not missing:
        return cfg
    out = OmegaConf.create(OmegaConf.to_container(cfg) if not isinstance(cfg, dict) else cfg)
    for (group, key), default in missing:
        (out[group] if group else out)[key] = default
    return out
