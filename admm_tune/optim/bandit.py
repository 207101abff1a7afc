"""The combinatorial sub-problem: a Thompson-sampling multi-armed bandit.

Each *block* of the z-step (a module's algorithm choice, or a categorical
hyper-parameter of a chosen algorithm) holds one Beta(α, β) arm per value.
A pull draws a sample from every arm and takes the best value per block, in
pipeline order, masking values that a forbidden clause would hit.  A reward
``r ∈ [0, 1]`` updates every arm of the pulled combination through a
Bernoulli draw (success with probability ``r``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..space import Categorical, Config, SearchSpace, param_key


def reward(value: float, observed: Sequence[float]) -> float:
    """Reward of an objective value given all values observed so far.

    ``r = 1 − clip((v − best) / (median − best), 0, 1)``: the best value seen
    earns 1, the median or worse earns 0.  DESIGN §2 writes ``1 − clip(v/f̂)``;
    shifting by the best matters when every loss sits near 0.03, where
    ``v/f̂`` would give every arm almost the same reward.
    """
    finite = [v for v in observed if np.isfinite(v)]
    if len(finite) < 2 or not np.isfinite(value):
        return 0.5 if np.isfinite(value) else 0.0
    best, ref = min(finite), float(np.median(finite))
    if ref <= best:
        return 1.0 if value <= best else 0.0
    return float(1.0 - np.clip((value - best) / (ref - best), 0.0, 1.0))


class NoAllowedDraw(RuntimeError):
    """Every draw of a pull hit a forbidden clause (e.g. the kept modules allow nothing the arms prefer)."""


class ThompsonBandit:
    """Beta-Bernoulli Thompson sampling over the blocks of a search space.

    Parameters
    ----------
    space : SearchSpace
        Defines the blocks: every module, and every categorical parameter.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.arms: dict[str, dict[str, list[float]]] = {}
        for module in space.modules:
            self.arms[module.name] = {a.name: [1.0, 1.0] for a in module.algorithms}
            for algo in module.algorithms:
                for p in algo.params:
                    if isinstance(p, Categorical):
                        self.arms[param_key(module.name, algo.name, p.name)] = {_label(c): [1.0, 1.0]
                                                                               for c in p.choices}

    def sample(self, rng: np.random.Generator, tries: int = 100, fixed: Mapping[str, Any] | None = None) -> Config:
        """One pull: the best Thompson draw per block, never a forbidden combination.

        Blocks are drawn in pipeline order, skipping values that a forbidden
        clause would hit given the blocks drawn so far; a pull that reaches a
        block with no allowed value is drawn again.  Modules named in
        ``fixed`` keep that algorithm (and its categorical values in ``fixed``).
        """
        fixed = fixed or {}
        for _ in range(tries):
            choice: Config = dict(fixed)  # kept modules first, so draws are masked against them too
            try:
                for module in self.space.modules:
                    if module.name in fixed:
                        continue
                    choice[module.name] = self._draw(module.name, module.names, choice, rng)
                    algo = module.algorithm(choice[module.name])
                    for p in algo.params:
                        if isinstance(p, Categorical):
                            key = param_key(module.name, algo.name, p.name)
                            choice[key] = self._draw(key, p.choices, choice, rng)
            except LookupError:
                continue
            if self.space.allowed(choice):
                return choice
        raise NoAllowedDraw(f"the forbidden clauses excluded all of {tries} bandit draws")

    def _draw(self, block: str, values: Sequence[Any], partial: Config, rng: np.random.Generator) -> Any:
        arms = self.arms[block]
        draws = [rng.beta(*arms[_label(v)]) for v in values]
        for i in np.argsort(draws)[::-1]:
            if self.space.allowed({**partial, block: values[i]}):
                return values[i]
        raise LookupError(block)

    def update(self, choice: Mapping[str, Any], r: float, rng: np.random.Generator) -> None:
        """Bernoulli draw with probability ``r``; credit every arm of ``choice``."""
        success = float(rng.random() < r)
        for block, value in choice.items():
            arm = self.arms.get(block, {}).get(_label(value))
            if arm is not None:
                arm[0] += success
                arm[1] += 1.0 - success

    def judge(self, block: str, value: Any, evidence: list[float]) -> None:
        """Set the arm of ``value`` in ``block`` to Beta ``evidence`` ``[α, β]`` (see ``optim/credit.py``)."""
        arm = self.arms.get(block, {}).get(_label(value))
        if arm is not None:
            arm[:] = evidence

    def means(self) -> dict[str, dict[str, float]]:
        """Posterior mean of every arm (for the trace and tests)."""
        return {b: {v: a / (a + b_) for v, (a, b_) in arms.items()} for b, arms in self.arms.items()}


def _label(value: Any) -> str:
    return str(value)
