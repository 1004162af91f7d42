"""An Optuna study's search space, read from Hydra's override grammar (hparams_search=optuna).

`hydra.sweeper.params` and the command line give each key a sweep, which becomes one of
Optuna's distributions, or a plain value, which every trial gets as it is:

    choice(sgd, adam) or sgd,adam   -> CategoricalDistribution(["sgd", "adam"])
    interval(0.1, 0.9)              -> FloatDistribution(0.1, 0.9)
    tag(log, interval(1e-4, 1.0))   -> FloatDistribution(1e-4, 1.0, log=True)
    range(1, 5) / range(2, 10, 2)   -> IntDistribution(1, 4) / IntDistribution(2, 8, step=2)
                                       (Hydra's range: the end is left out, as in a basic sweep)
    range(0.1, 0.5, 0.1)            -> CategoricalDistribution([0.1, 0.2, 0.3, 0.4])
    shuffle(...), a float range     -> CategoricalDistribution of its values
    0.01                            -> fixed: every trial's override is key=0.01

The grid sampler walks the discrete ones (`grid`); an interval has no grid and is refused.
Only Hydra's public parser and Optuna's public distributions are used.

Example:
    >>> lines = ["optim=choice(sgd, adam)", "optim.lr=tag(log, interval(0.001, 1))", "seed=3"]
    >>> space, fixed = read_space(lines)
    >>> sorted(space), fixed
    (['optim', 'optim.lr'], {'seed': '3'})
    >>> space["optim.lr"].log, grid({"k": read_space(["k=range(1,4)"])[0]["k"]})
    (True, {'k': [1, 2, 3]})
"""

from mlrefresh.errors import ConfigError

__all__ = ["grid", "read_space", "study_space", "trial_overrides"]

_EXAMPLES = "e.g. interval(0.001, 1.0), tag(log, interval(0.001, 1.0)) or choice(sgd, adam)"


def _distribution(override):
    """The override's Optuna distribution, or its value as a string (not a sweep)."""
    from hydra.core.override_parser.types import Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    key, value = override.get_key_element(), override.value()
    if override.is_interval_sweep():
        low, high = value.start, value.end
        if not low < high:
            raise ConfigError(
                f"the search space of {key}: interval({low}, {high}) is empty; give the low "
                "end first, e.g. interval(0.001, 1.0)"
            )
        if "log" in value.tags and low <= 0:
            raise ConfigError(
                f"the search space of {key}: a log interval must be above 0, not from {low}; "
                "e.g. tag(log, interval(0.0001, 1.0))"
            )
        return FloatDistribution(low, high, log="log" in value.tags)
    values = list(override.sweep_iterator(transformer=Transformer.encode))
    if not values:
        raise ConfigError(f"the search space of {key} has no values; {_EXAMPLES}")
    if override.is_range_sweep() and not value.shuffle and len(values) > 1:
        ends = (value.start, value.stop, value.step)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in ends) and value.step > 0:
            return IntDistribution(values[0], values[-1], step=value.step)
    for v in values:
        if not isinstance(v, (str, int, float, bool, type(None))):
            raise ConfigError(f"the search space of {key}: {v!r} is not a plain value; {_EXAMPLES}")
    return CategoricalDistribution(values)


def read_space(lines) -> tuple[dict, dict]:
    """(distributions, fixed values as strings) by key, from override lines (params first,
    then the command line: a later line for the same key wins). ConfigError in one line for an
    override that does not parse or an empty interval."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    space, fixed = {}, {}
    for line in lines:
        try:
            (override,) = parser.parse_overrides([line])
        except HydraException:
            raise ConfigError(f"the search space {line} cannot be parsed; {_EXAMPLES}") from None
        key = override.get_key_element()
        made = _distribution(override)
        space.pop(key, None)
        fixed.pop(key, None)
        (fixed if isinstance(made, str) else space)[key] = made
    return space, fixed


def grid(space: dict) -> dict:
    """Each key's values for Optuna's GridSampler; ConfigError for a key that has no grid."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    values = {}
    for key, d in space.items():
        if isinstance(d, CategoricalDistribution):
            values[key] = list(d.choices)
        elif isinstance(d, IntDistribution) and not d.log:
            values[key] = list(range(d.low, d.high + 1, d.step))
        else:
            raise ConfigError(
                f"the grid sampler needs a list of values for {key}, not an interval; give "
                f"choice(...) or range(...), or another sampler (hydra/sweeper/sampler=tpe)"
            )
    return values


def trial_overrides(params: dict, fixed: dict) -> list[str]:
    """A trial's overrides: its sampled values, then the fixed ones, as Hydra reads them."""
    lines = [f"{k}={_text(v)}" for k, v in params.items()]
    return lines + [f"{k}={v}" for k, v in fixed.items()]


def _text(value) -> str:
    """A sampled value in the override grammar (strings come encoded: Transformer.encode)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def study_space(params, arguments, sampler: dict, n_trials: int) -> tuple[dict, dict, int]:
    """(distributions, fixed values, n_trials) of a study: `hydra.sweeper.params`, then the
    command line's overrides; a grid sampler's study has at most its grid's size of trials."""
    import math

    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    space, fixed = read_space(lines)
    if dict(sampler or {}).get("_target_") == "optuna.samplers.GridSampler":
        n_trials = min(n_trials, math.prod(len(v) for v in grid(space).values()))
    return space, fixed, n_trials
