"""Search spaces: modules, algorithms and their hyper-parameters.

A search space is an ordered list of :class:`Module` objects; each module
offers a choice among :class:`Algorithm` objects, and each algorithm owns its
hyper-parameters (:class:`Float`, :class:`Int`, :class:`Categorical`).  The
structure is conditional by construction: a candidate carries only the
parameters of the algorithms it selects.

A candidate is a flat :data:`Config` mapping::

    {"scaler": "standard",
     "estimator": "random_forest",
     "estimator.random_forest.n_estimators": 120,
     "estimator.random_forest.criterion": "gini"}

Module names map to the chosen algorithm; ``module.algorithm.param`` keys map
to parameter values.  White-box constraints are :class:`Forbidden` clauses:
combinations that are never proposed.

This module is pure data: it never imports the classes that the algorithms
name (see :mod:`admm_tune.evaluate.pipeline`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from . import _fields as F
from .errors import ProblemError
from .machine import cores

Config = dict[str, Any]
"""A candidate: module → algorithm name, ``module.algorithm.param`` → value."""

SPACES_DIR = Path(__file__).resolve().parent.parent / "search_spaces"
"""Folder of the bundled search spaces (``classification``, ``regression``)."""

ONNX_OPS = ("standard", "ml")
"""What an algorithm's exported graph is made of (see :class:`Algorithm`)."""

RELATIVE_TO = ("n_features",)
"""Data quantities a :class:`Float` may be a fraction of."""


@dataclass(frozen=True)
class Float:
    """A continuous hyper-parameter on ``[low, high]``, optionally log-scaled.

    Parameters
    ----------
    name : str
        Keyword argument of the algorithm.
    low, high : float
        Bounds (inclusive).
    log : bool
        Search on a log scale (requires ``low > 0``).
    default : float, optional
        Value used when the algorithm is first tried; the middle of the
        (log-)range when omitted.
    relative_to : str, optional
        ``"n_features"``: the value is a fraction of the number of input
        features, turned into a count (at least 1) when the pipeline is built.
    """

    name: str
    low: float
    high: float
    log: bool = False
    default: float | None = None
    relative_to: str | None = None

    kind = "float"

    def to_unit(self, value: float) -> float:
        """Map a value to ``[0, 1]`` (log-scaled where asked)."""
        lo, hi, v = self.low, self.high, float(value)
        if self.log:
            lo, hi, v = math.log(lo), math.log(hi), math.log(max(v, self.low))
        return 0.0 if hi == lo else min(1.0, max(0.0, (v - lo) / (hi - lo)))

    def from_unit(self, u: float) -> float:
        """Map ``u`` in ``[0, 1]`` back to a (relaxed) value."""
        u = min(1.0, max(0.0, float(u)))
        if self.log:
            return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        return float(self.low + u * (self.high - self.low))

    def cast(self, relaxed: float) -> float:
        """The value the black box receives for a relaxed value."""
        return float(min(self.high, max(self.low, relaxed)))

    def initial(self) -> float:
        """Value tried first: the default, else the middle of the range."""
        return self.cast(self.default if self.default is not None else self.from_unit(0.5))

    def sample(self, rng: np.random.Generator) -> float:
        """Draw uniformly (on the log scale where asked)."""
        return self.cast(self.from_unit(rng.random()))

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a valid value of this parameter."""
        return (not isinstance(value, bool) and isinstance(value, (int, float))
                and self.low <= value <= self.high)


@dataclass(frozen=True)
class Int(Float):
    """An integer (ordinal) hyper-parameter on ``[low, high]``.

    The optimiser relaxes it to the box ``[low, high]`` and ties the relaxed
    value to an integer copy; :meth:`cast` rounds (on the log scale where
    asked, so both ends of a log range are reachable).
    """

    kind = "int"

    def cast(self, relaxed: float) -> int:  # type: ignore[override]
        """Round a relaxed value to the nearest admissible integer."""
        return int(min(self.high, max(self.low, math.floor(relaxed + 0.5))))

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is an integer within the bounds."""
        return (not isinstance(value, bool) and isinstance(value, (int, np.integer))
                and self.low <= value <= self.high)


@dataclass(frozen=True)
class Categorical:
    """An unordered hyper-parameter: one of ``choices``."""

    name: str
    choices: tuple[Any, ...]
    default: Any = None

    kind = "categorical"

    def initial(self) -> Any:
        """Value tried first: the default, else the first choice."""
        return self.default if self.default is not None else self.choices[0]

    def sample(self, rng: np.random.Generator) -> Any:
        """Draw one choice uniformly."""
        return self.choices[int(rng.integers(len(self.choices)))]

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one of the choices."""
        return any(value == c and type(value) is type(c) for c in self.choices)


Param = Float | Int | Categorical


@dataclass(frozen=True)
class Algorithm:
    """One choice of a module.

    Parameters
    ----------
    name : str
        Name used in configs (``random_forest``).
    estimator : str or None
        Dotted path of the class that implements it (``None``: the module
        is skipped, as for the ``none`` scaler).
    params : tuple of Param
        Searched hyper-parameters.
    fixed : mapping
        Keyword arguments always passed to the class.
    exportable : bool
        Whether the fitted algorithm can be exported to ONNX.
    onnx_ops : {"standard", "ml"}
        Whether its exported graph is made of standard ONNX operators or
        keeps ``ai.onnx.ml`` ones (which OpenVINO and TensorRT cannot run).
    note : str
        Why it is not exportable, or any remark for the user.
    quantizable : bool
        Whether its exported graph has MatMul/Gemm weights for int8 to
        quantise (``quantizable: false`` in YAML for scalers, trees, SVMs,
        ...): int8 is never proposed for a pipeline none of whose steps has
        any (see :func:`admm_tune.deployment.with_deployment`).
    """

    name: str
    estimator: str | None
    params: tuple[Param, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    exportable: bool = True
    note: str = ""
    onnx_ops: str = "standard"
    quantizable: bool = True
    applies: Mapping[str, Mapping[str, frozenset[Any]]] = field(default_factory=dict)
    """Parameters that take effect only for some values of others (``applies: {kernel: [poly]}`` under ``degree``
    in YAML): parameter → {other parameter → its values}. Such a parameter is still searched and passed; it is left
    out where a config is described to people (:meth:`SearchSpace.applicable`)."""

    def param(self, name: str) -> Param:
        """Return the hyper-parameter called ``name``."""
        return _by_name(self.params, name)


@dataclass(frozen=True)
class Module:
    """A stage of the pipeline with its algorithms (one is chosen).

    ``group`` names the block of variables the module belongs to (``ml``, or
    ``deployment`` for backend and precision): the optimiser varies one
    group at a time in some of its moves, so a cheap block can move while an
    expensive one (a refit) stays put.
    """

    name: str
    algorithms: tuple[Algorithm, ...]
    group: str = "ml"

    def algorithm(self, name: str) -> Algorithm:
        """Return the algorithm called ``name``."""
        return _by_name(self.algorithms, name)

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the algorithms, in order."""
        return tuple(a.name for a in self.algorithms)


@dataclass(frozen=True)
class Forbidden:
    """A white-box constraint: a combination that is never proposed.

    ``when`` maps config keys (a module name or ``module.algorithm.param``
    of a categorical) to the values that, all together, make a config
    forbidden.  ``{"transformer": {"polynomial"}, "estimator": {"svc"}}``
    forbids polynomial features in front of an SVC.
    """

    when: Mapping[str, frozenset[Any]]
    reason: str = ""

    def matches(self, config: Mapping[str, Any]) -> bool:
        """Whether ``config`` (complete or partial) hits every condition."""
        return all(k in config and config[k] in v for k, v in self.when.items())


@dataclass(frozen=True)
class Limit:
    """A white-box linear bound on integers: ``prod(config[k] for k in keys) <= max``.

    Checked only when every key is present (the algorithms owning them are
    chosen), e.g. ``[backend.onnxruntime.intra_op_num_threads, backend.onnxruntime.inter_op_num_threads]``
    at most the cores.
    """

    keys: tuple[str, ...]
    max: float
    reason: str = ""

    def violated(self, config: Mapping[str, Any]) -> bool:
        """Whether ``config`` holds every key and breaks the bound."""
        if not all(k in config for k in self.keys):
            return False
        return math.prod(float(config[k]) for k in self.keys) > self.max


def _by_name(items: Iterable[Any], name: str) -> Any:
    for item in items:
        if item.name == name:
            return item
    raise KeyError(name)


def describe(config: Mapping[str, Any]) -> str:
    """A config for people: ``standard -> pca(n_components=0.95) -> svc(C=1, kernel=rbf)``."""
    parts = []
    for module in (k for k in config if "." not in k):
        prefix = f"{module}.{config[module]}."
        shown = ", ".join(f"{k[len(prefix):]}={v:.4g}" if isinstance(v, float) else f"{k[len(prefix):]}={v}"
                          for k, v in config.items() if k.startswith(prefix))
        parts.append(f"{config[module]}({shown})" if shown else str(config[module]))
    return " -> ".join(parts)


def param_key(module: str, algorithm: str, param: str) -> str:
    """Key of a hyper-parameter in a flat config."""
    return f"{module}.{algorithm}.{param}"


@dataclass(frozen=True)
class SearchSpace:
    """Modules (in pipeline order) and the white-box rules over them.

    ``not_exportable`` lists combinations that cannot be exported to ONNX
    (a parameter value without a converter); they become forbidden clauses
    when the space is searched with a deployment.
    """

    modules: tuple[Module, ...]
    forbidden: tuple[Forbidden, ...] = ()
    name: str = ""
    limits: tuple[Limit, ...] = ()
    not_exportable: tuple[Forbidden, ...] = ()

    # -- structure ---------------------------------------------------------
    def module(self, name: str) -> Module:
        """Return the module called ``name``."""
        return _by_name(self.modules, name)

    @property
    def module_names(self) -> tuple[str, ...]:
        """Module names in pipeline order."""
        return tuple(m.name for m in self.modules)

    def active(self, choice: Mapping[str, Any]) -> list[tuple[str, Module, Algorithm]]:
        """(module name, module, algorithm) for each module's chosen algorithm."""
        return [(m.name, m, m.algorithm(choice[m.name])) for m in self.modules]

    @property
    def groups(self) -> tuple[str, ...]:
        """Module groups, in order of first appearance."""
        return tuple(dict.fromkeys(m.group for m in self.modules))

    def numeric_params(self, choice: Mapping[str, Any], group: str | None = None) -> list[tuple[str, Float]]:
        """Keys and specs of the continuous and integer parameters ``choice`` activates (of one group)."""
        return [(param_key(mn, a.name, p.name), p) for mn, m, a in self.active(choice)
                if group is None or m.group == group for p in a.params if isinstance(p, Float)]

    def categorical_params(self, choice: Mapping[str, Any]) -> list[tuple[str, Categorical]]:
        """Keys and specs of the categorical parameters ``choice`` activates."""
        return [(param_key(mn, a.name, p.name), p)
                for mn, _, a in self.active(choice) for p in a.params if isinstance(p, Categorical)]

    def choice_of(self, config: Mapping[str, Any]) -> Config:
        """The combinatorial part of a config: algorithms and categorical values."""
        choice: Config = {m: config[m] for m in self.module_names}
        for key, _ in self.categorical_params(choice):
            choice[key] = config[key]
        return choice

    def structure_of(self, config: Mapping[str, Any]) -> tuple[str, ...]:
        """The algorithm chosen in each module, in order."""
        return tuple(config[m] for m in self.module_names)

    def applicable(self, config: Mapping[str, Any]) -> Config:
        """``config`` without the parameters that take no effect given its other values (:attr:`Algorithm.applies`:
        an SVC's ``degree`` unless its kernel is ``poly``); keys this space does not know are kept."""
        out = dict(config)
        for module in self.modules:
            name = config.get(module.name)
            if name not in module.names:
                continue
            algorithm = module.algorithm(name)
            for param, conditions in algorithm.applies.items():
                if not all(config.get(param_key(module.name, name, other)) in values
                           for other, values in conditions.items()):
                    out.pop(param_key(module.name, name, param), None)
        return out

    def allowed(self, config: Mapping[str, Any]) -> bool:
        """Whether a (possibly partial) config hits no forbidden clause and breaks no limit."""
        return not any(f.matches(config) for f in self.forbidden) and not any(
            lim.violated(config) for lim in self.limits)

    # -- candidates ----------------------------------------------------------
    def complete(self, choice: Mapping[str, Any], values: Mapping[str, Any] | None = None) -> Config:
        """Full config for ``choice``: given ``values`` where present, defaults elsewhere."""
        values = values or {}
        config: Config = {m: choice[m] for m in self.module_names}
        for mn, _, a in self.active(choice):
            for p in a.params:
                key = param_key(mn, a.name, p.name)
                if isinstance(p, Categorical):
                    config[key] = choice.get(key, values.get(key, p.initial()))
                else:
                    config[key] = p.cast(values[key]) if key in values else p.initial()
        return config

    def sample(self, rng: np.random.Generator, max_tries: int = 1000) -> Config:
        """Draw a config uniformly over algorithms and parameters, skipping forbidden ones."""
        for _ in range(max_tries):
            choice: Config = {}
            for m in self.modules:
                choice[m.name] = m.algorithms[int(rng.integers(len(m.algorithms)))].name
            config = {m: choice[m] for m in self.module_names}
            for mn, _, a in self.active(choice):
                for p in a.params:
                    config[param_key(mn, a.name, p.name)] = p.sample(rng)
            if self.allowed(config):
                return config
        raise ProblemError("search_space.forbidden", "forbids every combination that was drawn")

    def validate_config(self, config: Mapping[str, Any], path: str = "config") -> None:
        """Raise :class:`ProblemError` unless ``config`` is a complete, allowed candidate."""
        for m in self.modules:
            if m.name not in config:
                raise ProblemError(F.join(path, m.name), "missing module choice")
            if config[m.name] not in m.names:
                raise ProblemError(F.join(path, m.name),
                                   f"unknown algorithm {config[m.name]!r}; expected one of {list(m.names)}")
        expected = {param_key(mn, a.name, p.name): p for mn, _, a in self.active(config) for p in a.params}
        for key, p in expected.items():
            if key not in config:
                raise ProblemError(F.join(path, key), "missing parameter")
            if not p.contains(config[key]):
                raise ProblemError(F.join(path, key), f"{F.describe(config[key])} is outside the space")
        extra = set(config) - set(expected) - set(self.module_names)
        if extra:
            raise ProblemError(F.join(path, sorted(extra)[0]), "not a parameter of the chosen algorithms")
        if not self.allowed(config):
            raise ProblemError(path, "combination is forbidden by the search space")

    def restricted(self, keep: Mapping[str, Iterable[str]]) -> SearchSpace:
        """A copy keeping only the named algorithms of some modules.

        Rules that name a removed algorithm simply never match again.
        """
        modules = []
        for m in self.modules:
            if m.name in keep:
                names = set(keep[m.name])
                m = replace(m, algorithms=tuple(a for a in m.algorithms if a.name in names))
            modules.append(m)
        return replace(self, modules=tuple(modules))

    def combined(self, other: SearchSpace, extra: Iterable[Forbidden] = ()) -> SearchSpace:
        """This space followed by ``other``'s modules, with both rule sets and ``extra`` clauses.

        Raises
        ------
        ProblemError
            When a module name is in both.
        """
        clash = set(self.module_names) & set(other.module_names)
        if clash:
            raise ProblemError(f"search_space.modules.{sorted(clash)[0]}", f"is also a module of {other.name!r}")
        return SearchSpace(self.modules + other.modules, self.forbidden + other.forbidden + tuple(extra),
                           self.name, self.limits + other.limits, self.not_exportable + other.not_exportable)

    # -- loading ---------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, path: str = "search_space", name: str = "") -> SearchSpace:
        """Build and validate a space from its mapping form (see ``docs/problem-format.md``)."""
        data = F.mapping(data, path)
        F.only_keys(data, ("name", "task", "modules", "forbidden", "limits", "not_exportable"), path)
        raw_modules = F.sequence(data.get("modules"), F.join(path, "modules"))
        if not raw_modules:
            raise ProblemError(F.join(path, "modules"), "needs at least one module")
        modules = [_module(raw, F.join(F.join(path, "modules"), i)) for i, raw in enumerate(raw_modules)]
        _unique([m.name for m in modules], F.join(path, "modules"), "module")
        space = cls(tuple(modules), (), str(data.get("name", name)))
        def rules(key: str, read: Any) -> tuple[Any, ...]:
            return tuple(read(raw, space, F.join(F.join(path, key), i))
                         for i, raw in enumerate(F.sequence(data.get(key, []), F.join(path, key))))

        return cls(space.modules, rules("forbidden", _forbidden), space.name, rules("limits", _limit),
                   rules("not_exportable", _forbidden))

    @classmethod
    def load(cls, source: str | Path, path: str = "search_space") -> SearchSpace:
        """Load a bundled space by name (``classification``) or a YAML file."""
        file = resolve_space_file(source, path)
        return cls.from_dict(read_yaml(file, path), path, name=file.stem)


def resolve_space_file(source: str | Path, path: str = "search_space") -> Path:
    """Path of a bundled space name or a YAML file, checking that it exists."""
    candidate = Path(source)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise ProblemError(path, f"file {str(candidate)!r} does not exist")
        return candidate
    bundled = SPACES_DIR / f"{source}.yaml"
    if not bundled.is_file():
        names = sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))
        raise ProblemError(path, f"unknown search space {str(source)!r}; bundled: {names} or a .yaml path")
    return bundled


def read_yaml(file: str | Path, path: str) -> Any:
    """Read a YAML file with the safe loader, naming ``path`` on errors."""
    try:
        with open(file, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ProblemError(path, f"{file} is not valid YAML: {exc}") from None
    except OSError as exc:
        raise ProblemError(path, f"cannot read {file}: {exc.strerror}") from None


def _unique(names: list[str], path: str, what: str) -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            raise ProblemError(F.join(path, i), f"duplicate {what} name {n!r}")
        seen.add(n)


def _module(raw: Any, path: str) -> Module:
    raw = F.mapping(raw, path)
    F.only_keys(raw, ("name", "algorithms"), path)
    name = F.string(raw.get("name"), F.join(path, "name"))
    if "." in name:
        raise ProblemError(F.join(path, "name"), "must not contain '.'")
    algos = F.sequence(raw.get("algorithms"), F.join(path, "algorithms"))
    if not algos:
        raise ProblemError(F.join(path, "algorithms"), "needs at least one algorithm")
    algorithms = [_algorithm(a, F.join(F.join(path, "algorithms"), i)) for i, a in enumerate(algos)]
    _unique([a.name for a in algorithms], F.join(path, "algorithms"), "algorithm")
    return Module(name, tuple(algorithms))


def _algorithm(raw: Any, path: str) -> Algorithm:
    raw = F.mapping(raw, path)
    F.only_keys(raw, ("name", "class", "params", "fixed", "exportable", "onnx_ops", "note", "quantizable"), path)
    name = F.string(raw.get("name"), F.join(path, "name"))
    if "." in name:
        raise ProblemError(F.join(path, "name"), "must not contain '.'")
    estimator = raw.get("class")
    if estimator is not None:
        estimator = F.string(estimator, F.join(path, "class"))
    params_raw = F.mapping(raw.get("params", {}) or {}, F.join(path, "params"))
    params = tuple(_param(k, v, F.join(F.join(path, "params"), k)) for k, v in params_raw.items())
    applies = {k: _applies(k, v["applies"], params, F.join(F.join(F.join(path, "params"), k), "applies"))
               for k, v in params_raw.items() if isinstance(v, Mapping) and "applies" in v}
    fixed = dict(F.mapping(raw.get("fixed", {}) or {}, F.join(path, "fixed")))
    clash = set(fixed) & set(params_raw)
    if clash:
        raise ProblemError(F.join(F.join(path, "fixed"), sorted(clash)[0]), "is also a searched parameter")
    exportable = F.boolean(raw.get("exportable", True), F.join(path, "exportable"))
    note = str(raw.get("note", ""))
    onnx_ops = F.string(raw.get("onnx_ops", "standard"), F.join(path, "onnx_ops"), choices=ONNX_OPS)
    quantizable = F.boolean(raw.get("quantizable", estimator is not None), F.join(path, "quantizable"))
    return Algorithm(name, estimator, params, fixed, exportable, note, onnx_ops, quantizable, applies)


def _applies(name: str, raw: Any, params: tuple[Param, ...], path: str) -> dict[str, frozenset[Any]]:
    """Parameter ``name``'s ``applies``: the values of other categorical parameters of its algorithm it takes
    effect for."""
    raw = F.mapping(raw, path)
    if not raw:
        raise ProblemError(path, "needs at least one condition")
    out = {}
    for other, values in raw.items():
        where = F.join(path, other)
        param = next((p for p in params if p.name == other), None)
        if not isinstance(param, Categorical) or other == name:
            raise ProblemError(where, "must name another categorical parameter of the same algorithm")
        values = F.sequence(values, where)
        if not values:
            raise ProblemError(where, "needs at least one value")
        unknown = [v for v in values if v not in param.choices]
        if unknown:
            raise ProblemError(where, f"{unknown[0]!r} is not one of {list(param.choices)}")
        out[other] = frozenset(values)
    return out


def _param(name: str, raw: Any, path: str) -> Param:
    raw = {k: v for k, v in F.mapping(raw, path).items() if k != "applies"}  # read by _applies
    kind = F.string(raw.get("type"), F.join(path, "type"), choices=("float", "int", "categorical"))
    if kind == "categorical":
        F.only_keys(raw, ("type", "choices", "default"), path)
        choices = F.sequence(raw.get("choices"), F.join(path, "choices"))
        if not choices:
            raise ProblemError(F.join(path, "choices"), "needs at least one choice")
        for i, c in enumerate(choices):
            if not isinstance(c, (str, int, float, bool)) and c is not None:
                raise ProblemError(F.join(F.join(path, "choices"), i), "choices must be scalars")
        default = raw.get("default")
        if default is not None and default not in choices:
            raise ProblemError(F.join(path, "default"), f"{default!r} is not one of the choices")
        return Categorical(name, tuple(choices), default)
    F.only_keys(raw, ("type", "low", "high", "log", "default", "relative_to"), path)
    read = F.integer if kind == "int" else F.number
    low = read(_symbol(raw.get("low"), kind), F.join(path, "low"))
    high = read(_symbol(raw.get("high"), kind), F.join(path, "high"))
    if low > high:
        raise ProblemError(F.join(path, "low"), f"low ({low:g}) is greater than high ({high:g})")
    log = F.boolean(raw.get("log", False), F.join(path, "log"))
    if log and low <= 0:
        raise ProblemError(F.join(path, "low"), f"a log-scaled range needs low > 0, got {low:g}")
    default = raw.get("default")
    if default is not None:
        default = read(default, F.join(path, "default"))
        if not low <= default <= high:
            raise ProblemError(F.join(path, "default"), f"{default:g} is outside [{low:g}, {high:g}]")
    relative_to = raw.get("relative_to")
    if relative_to is not None:
        if kind != "float":
            raise ProblemError(F.join(path, "relative_to"), "only float parameters can be relative")
        F.string(relative_to, F.join(path, "relative_to"), choices=RELATIVE_TO)
    cls = Int if kind == "int" else Float
    return cls(name, low, high, log, default, relative_to)


def _symbol(value: Any, kind: str) -> Any:
    """``cores`` in an integer bound is the number of CPU cores of this machine."""
    return cores() if kind == "int" and value == "cores" else value


def _limit(raw: Any, space: SearchSpace, path: str) -> Limit:
    raw = F.mapping(raw, path)
    F.only_keys(raw, ("product", "max", "reason"), path)
    keys = F.sequence(raw.get("product"), F.join(path, "product"))
    if not keys:
        raise ProblemError(F.join(path, "product"), "needs at least one parameter")
    for i, key in enumerate(keys):
        parts = str(key).split(".")
        try:
            p = space.module(parts[0]).algorithm(parts[1]).param(parts[2]) if len(parts) == 3 else None
        except KeyError:
            p = None
        if not isinstance(p, Float):
            raise ProblemError(F.join(F.join(path, "product"), i),
                               f"{key!r} is not module.algorithm.param of an int or float parameter")
    bound = F.number(_symbol(raw.get("max"), "int"), F.join(path, "max"), minimum=0, exclusive=True)
    return Limit(tuple(str(k) for k in keys), bound, str(raw.get("reason", "")))


def _forbidden(raw: Any, space: SearchSpace, path: str) -> Forbidden:
    raw = F.mapping(raw, path)
    F.only_keys(raw, ("when", "reason"), path)
    when = F.mapping(raw.get("when"), F.join(path, "when"))
    if not when:
        raise ProblemError(F.join(path, "when"), "needs at least one condition")
    conditions: dict[str, frozenset[Any]] = {}
    for key, values in when.items():
        kpath = F.join(F.join(path, "when"), key)
        values = values if isinstance(values, (list, tuple)) else [values]
        allowed = _condition_values(space, key, kpath)
        for v in values:
            if v not in allowed:
                raise ProblemError(kpath, f"unknown value {v!r}; expected one of {list(allowed)}")
        conditions[key] = frozenset(values)
    return Forbidden(conditions, str(raw.get("reason", "")))


def _condition_values(space: SearchSpace, key: str, path: str) -> tuple[Any, ...]:
    parts = key.split(".")
    try:
        module = space.module(parts[0])
        if len(parts) == 1:
            return module.names
        if len(parts) == 3:
            p = module.algorithm(parts[1]).param(parts[2])
            if isinstance(p, Categorical):
                return p.choices
    except KeyError:
        pass
    raise ProblemError(path, "expected a module name or module.algorithm.param of a categorical parameter")
