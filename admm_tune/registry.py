"""Which classes a search space may name, and how they are imported.

A problem file names classes by dotted path; only modules under
:data:`ALLOWED_PREFIXES` are imported, so a problem file cannot run
arbitrary code.
"""

from __future__ import annotations

import importlib

from .errors import ProblemError

ALLOWED_PREFIXES = ("sklearn.", "admm_tune.")
"""Modules a search space may name classes from."""


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
