"""The deployment part of a problem: which backends, precisions and knobs, at what batch size.

A problem's ``deployment`` field names a deployment space (``cpu``, ``gpu``
or a YAML file whose modules are ``backend`` and ``precision``).  Loading it
checks every name against what admm_tune knows (backends, precisions, each
backend's knobs and their admissible ranges) and then fits it to this
machine, by construction:

- backends that are not available here are dropped (the reasons are kept in
  :attr:`Deployment.notes`); none left is an error;
- precisions that no remaining backend runs are dropped, and each backend is
  kept away from the precisions it cannot run (forbidden clauses);
- backends that need standard ONNX operators get graphs whose ``ai.onnx.ml``
  operators are lowered (:mod:`~admm_tune.evaluate.graph`), so every
  algorithm and the categorical front run on every backend.

:func:`with_deployment` then joins the ML space (exportable algorithms only)
and the deployment space into the one space the optimiser searches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import _fields as F
from .errors import ProblemError
from .evaluate.backends import BACKENDS, PRECISIONS, get_backend
from .evaluate.timing import TimingSettings
from .metrics import DEPLOYMENT, measured
from .space import Categorical, Forbidden, Int, SearchSpace, read_yaml, resolve_space_file

BACKEND, PRECISION = "backend", "precision"
MODULES = (BACKEND, PRECISION)
TREE_KNOBS = ("tree_lowering",)
"""Knobs that act on tree ensembles only: not told for a graph without them (summary, report, the race's names)."""
GROUP = "deployment"
"""Module group of the deployment modules (see :class:`~admm_tune.space.Module`)."""

DEPLOY_METRICS = measured(DEPLOYMENT)
"""Metrics measured for every deployed candidate, usable in constraints (:mod:`admm_tune.metrics`)."""


def deploy_metrics(task: str) -> dict[str, str]:
    """The deployment metrics measured for a task."""
    return measured(DEPLOYMENT, task)


MISMATCH = "output_mismatch"
"""Implicit constraint ``output_mismatch <= 1`` of every deployment problem."""


@dataclass(frozen=True)
class Deployment:
    """The deployment space of a problem and how candidates are run.

    Attributes
    ----------
    space : SearchSpace
        Modules ``backend`` and ``precision``, fitted to this machine.
    batch_size : int
        Rows per inference call when verifying and timing.
    timing : TimingSettings
    name : str
        The deployment space's name (``deployment_cpu``).
    notes : tuple of str
        What was dropped for this machine, and why.
    """

    space: SearchSpace
    batch_size: int = 1
    timing: TimingSettings = field(default_factory=TimingSettings)
    name: str = ""
    notes: tuple[str, ...] = ()

    @staticmethod
    def split(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(ML part, deployment part)`` of a full config."""
        ml, deploy = {}, {}
        for key, value in config.items():
            (deploy if key.split(".")[0] in MODULES else ml)[key] = value
        return ml, deploy

    @staticmethod
    def knobs(config: Mapping[str, Any]) -> dict[str, Any]:
        """The chosen backend's knob values in ``config``."""
        prefix = f"{BACKEND}.{config[BACKEND]}."
        return {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}


def load_deployment(raw: Any, path: str = "deployment", *, base_dir: Path | None = None,
                    restrict: Mapping[str, Any] | None = None) -> Deployment:
    """Read a problem's ``deployment`` field (a space name, or a mapping with ``space``).

    ``restrict`` is the problem's ``restrict`` field: its ``backend`` and
    ``precision`` entries keep only those choices (``restrict: {backend:
    [openvino], precision: [fp32, bf16]}``), before the space is fitted to
    this machine; its other entries are the ML modules' and ignored here.

    Raises
    ------
    ProblemError
        Naming the field: unknown backend, precision or knob, a knob range
        the backend does not accept, a restriction to a choice the space
        does not have, or no backend available here.
    """
    if isinstance(raw, (str, Path)):
        raw = {"space": raw}
    raw = F.mapping(raw, path)
    F.only_keys(raw, ("space", "batch_size", "timing"), path)
    spec = raw.get("space", "cpu")
    spath = F.join(path, "space")
    if isinstance(spec, Mapping):
        data, name = spec, str(spec.get("name", "deployment"))
    else:
        source = F.string(str(spec) if isinstance(spec, Path) else spec, spath)
        if source.endswith((".yaml", ".yml")) and base_dir is not None and not Path(source).is_absolute():
            source = str(base_dir / source)
        file = resolve_space_file(source if source.endswith((".yaml", ".yml")) else f"deployment_{source}", spath)
        data, name = read_yaml(file, spath), file.stem
    space = SearchSpace.from_dict(data, spath, name=name)
    _check(space, spath)
    space = replace(space, modules=tuple(replace(m, group=GROUP) for m in space.modules))
    space = _restricted(space, F.mapping(restrict, "restrict") if restrict is not None else {})
    batch = F.integer(raw.get("batch_size", 1), F.join(path, "batch_size"), minimum=1)
    timing = _timing(raw.get("timing", {}) or {}, F.join(path, "timing"))
    space, notes = _fit_to_machine(space, spath)
    return Deployment(space, batch, timing, space.name, notes)


def with_deployment(ml: SearchSpace, deployment: Deployment) -> tuple[SearchSpace, tuple[str, ...]]:
    """The joint space: exportable ML algorithms, then the deployment modules, with cross-rules.

    The ML space's ``not_exportable`` combinations become forbidden.

    Returns the space and notes on what was removed.
    """
    notes = []
    keep: dict[str, list[str]] = {}
    for module in ml.modules:
        names = [a.name for a in module.algorithms if a.exportable]
        dropped = [a for a in module.algorithms if not a.exportable]
        notes += [f"{module.name}.{a.name} left out: not exportable ({a.note or 'no ONNX converter'})"
                  for a in dropped]
        if not names:
            raise ProblemError(f"search_space.{module.name}", "no algorithm of this module can be exported to ONNX")
        keep[module.name] = names
    ml = ml.restricted(keep)
    extra = []
    if "int8" in deployment.space.module(PRECISION).names:  # int8 quantises MatMul/Gemm weights: some step needs them
        extra.append(Forbidden({PRECISION: frozenset(["int8"]), **{
            m.name: frozenset(a.name for a in m.algorithms if not a.quantizable) for m in ml.modules}},
            "int8 needs MatMul/Gemm weights, which none of these steps has"))
    # no rule keeps ai.onnx.ml graphs from a backend: those that need standard operators lower them
    return ml.combined(deployment.space, extra + list(ml.not_exportable)), tuple(notes)


def _restricted(space: SearchSpace, restrict: Mapping[str, Any]) -> SearchSpace:
    """``space`` keeping only the backends and precisions ``restrict`` names (the other modules are ML ones)."""
    keep = {}
    for module in MODULES:
        if module not in restrict:
            continue
        path = F.join("restrict", module)
        names = F.sequence(restrict[module], path)
        known = space.module(module).names
        unknown = [n for n in names if n not in known]
        if not names or unknown:
            raise ProblemError(path, f"keeps no {module}" if not names else
                               f"{unknown[0]!r} is not a {module} of this deployment space; expected some of "
                               f"{list(known)}")
        keep[module] = list(names)
    return space.restricted(keep) if keep else space


def _check(space: SearchSpace, path: str) -> None:
    """Names of modules, backends, precisions and knobs, and the knobs' ranges."""
    names = space.module_names
    if tuple(sorted(names)) != tuple(sorted(MODULES)):
        raise ProblemError(F.join(path, "modules"), f"a deployment space has exactly the modules {list(MODULES)}, "
                                                    f"got {list(names)}")
    for i, algo in enumerate(space.module(PRECISION).algorithms):
        apath = f"{path}.modules[{names.index(PRECISION)}].algorithms[{i}]"
        if algo.name not in PRECISIONS:
            raise ProblemError(F.join(apath, "name"), f"unknown precision {algo.name!r}; expected one of "
                                                      f"{list(PRECISIONS)}")
        if algo.params or algo.estimator:
            raise ProblemError(apath, "a precision takes no class and no params")
    for i, algo in enumerate(space.module(BACKEND).algorithms):
        apath = f"{path}.modules[{names.index(BACKEND)}].algorithms[{i}]"
        if algo.name not in BACKENDS:
            raise ProblemError(F.join(apath, "name"), f"unknown backend {algo.name!r}; expected one of "
                                                      f"{sorted(BACKENDS)}")
        if algo.estimator:
            raise ProblemError(F.join(apath, "class"), "a backend takes no class")
        knobs = BACKENDS[algo.name].capabilities().knobs
        for p in algo.params:
            ppath = F.join(F.join(apath, "params"), p.name)
            knob = knobs.get(p.name)
            if knob is None:
                raise ProblemError(ppath, f"unknown knob of {algo.name}; known: {sorted(knobs)}")
            if knob.kind == "int":
                if not isinstance(p, Int):
                    raise ProblemError(F.join(ppath, "type"), f"{p.name} is an integer knob (type: int)")
                if knob.low is not None and p.low < knob.low:
                    raise ProblemError(F.join(ppath, "low"), f"{p.name} must be >= {knob.low}, got {p.low:g}")
                if knob.high is not None and p.high > knob.high:
                    raise ProblemError(F.join(ppath, "high"), f"{p.name} must be <= {knob.high} on this machine "
                                                              f"(write 'cores' for all cores), got {p.high:g}")
            else:
                if not isinstance(p, Categorical):
                    raise ProblemError(F.join(ppath, "type"), f"{p.name} is a categorical knob (type: categorical)")
                bad = [c for c in p.choices if c not in knob.choices]
                if bad:
                    raise ProblemError(F.join(ppath, "choices"), f"{bad[0]!r} is not a value of {p.name}; "
                                                                 f"expected some of {list(knob.choices)}")


def _fit_to_machine(space: SearchSpace, path: str) -> tuple[SearchSpace, tuple[str, ...]]:
    notes: list[str] = []
    kept, reasons = [], []
    for algo in space.module(BACKEND).algorithms:
        ok, reason = BACKENDS[algo.name].available()
        if ok:
            kept.append(algo.name)
        else:
            reasons.append(f"{algo.name}: {reason}")
            notes.append(f"backend {algo.name} left out: {reason}")
    if not kept:
        raise ProblemError(path, "no backend of this deployment space can run here: " + "; ".join(reasons))
    runs = {b: set(BACKENDS[b].capabilities().precisions) for b in kept}
    precisions = [p for p in space.module(PRECISION).names if any(p in r for r in runs.values())]
    notes += [f"precision {p} left out: none of {kept} runs it here"
              for p in space.module(PRECISION).names if p not in precisions]
    if not precisions:
        raise ProblemError(F.join(path, PRECISION), f"none of these precisions runs on {kept} here")
    space = space.restricted({BACKEND: kept, PRECISION: precisions})
    extra = [Forbidden({BACKEND: frozenset([b]), PRECISION: frozenset(p for p in precisions if p not in r)},
                       f"{b} does not run these precisions here")
             for b, r in runs.items() if any(p not in r for p in precisions)]
    return replace(space, forbidden=space.forbidden + tuple(extra)), tuple(notes)


def _timing(raw: Any, path: str) -> TimingSettings:
    settings = F.settings(raw, TimingSettings(), path)
    if settings.max_runs < settings.min_runs:
        raise ProblemError(F.join(path, "max_runs"), "must be >= min_runs")
    return settings


__all__ = ["DEPLOY_METRICS", "MISMATCH", "Deployment", "deploy_metrics", "load_deployment", "with_deployment"]


def running_text(space: SearchSpace, text: list[str]) -> tuple[SearchSpace, tuple[str, ...]]:
    """The joint space without the backends that run only standard operators when the data has ``text`` columns:
    their TF-IDF graph tokenizes with ONNX Runtime's ``Tokenizer`` (``com.microsoft``), which those cannot run.

    Raises
    ------
    ProblemError
        Naming ``restrict.backend`` when no backend left runs it.
    """
    if not text:
        return space, ()
    names = space.module(BACKEND).names
    keep = [n for n in names if not get_backend(n).capabilities().standard_ops_only]
    if not keep:
        raise ProblemError("restrict.backend", f"keeps only {', '.join(names)}, which run standard ONNX operators "
                                               f"only; the text column(s) {', '.join(text)} need ONNX Runtime's "
                                               "Tokenizer")
    if len(keep) == len(names):
        return space, ()
    left = ", ".join(n for n in names if n not in keep)
    return space.restricted({BACKEND: keep}), (
        f"backend {left} left out: the text column(s) {', '.join(text)} are tokenized by ONNX Runtime's "
        "Tokenizer operator, outside the standard operators it runs",)
