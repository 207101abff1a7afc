"""Which classes a search space may name, and how they are imported.

A problem file names classes by dotted path; only modules under
:data:`ALLOWED_PREFIXES` are imported, so a problem file cannot run
arbitrary code.  Code (never a problem file) may extend the list with
:func:`allow`, e.g. ``admm_tune.registry.allow("xgboost")``.
"""

from __future__ import annotations

import importlib

from .errors import ProblemError

ALLOWED_PREFIXES: tuple[str, ...] = ("sklearn.", "admm_tune.")
"""Modules a search space may name classes from."""


def allow(package: str) -> None:
    """Let search spaces name classes from ``package`` (a top-level package or a dotted module path)."""
    global ALLOWED_PREFIXES
    prefix = package.rstrip(".") + "."
    if not package.strip(". ") or not all(part.isidentifier() for part in prefix[:-1].split(".")):
        raise ValueError(f"not a package name: {package!r}")
    if prefix not in ALLOWED_PREFIXES:
        ALLOWED_PREFIXES = (*ALLOWED_PREFIXES, prefix)


def resolve_class(dotted: str, path: str = "class") -> type:
    """Import the class at ``dotted``, only from :data:`ALLOWED_PREFIXES`.

    Raises
    ------
    ProblemError
        Naming ``path`` when the module is not allowed or the class does not exist.
    """
    if not dotted.startswith(ALLOWED_PREFIXES):
        raise ProblemError(path, f"{dotted!r} is outside the allowed modules {list(ALLOWED_PREFIXES)}")
    module_name, _, name = dotted.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        raise ProblemError(path, f"cannot import {dotted!r}") from None
    if not isinstance(cls, type):
        raise ProblemError(path, f"{dotted!r} is not a class")
    return cls
