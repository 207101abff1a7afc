"""The architecture's one-way flow, checked on the import statements of the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "admm_tune"

FORBIDDEN = {
    "optim": ("admm_tune.evaluate", "admm_tune.parallel", "admm_tune.journal", "admm_tune.runner", "admm_tune.result",
              "admm_tune.cli", "sklearn", "onnx", "onnxruntime", "openvino"),
    "evaluate": ("admm_tune.optim", "admm_tune.journal", "admm_tune.runner", "admm_tune.result", "admm_tune.cli"),
    "journal.py": ("admm_tune.optim", "admm_tune.evaluate", "admm_tune.runner", "admm_tune.cli"),
    "result.py": ("admm_tune.optim", "admm_tune.evaluate", "admm_tune.runner", "admm_tune.cli"),
    "space.py": ("admm_tune.optim", "admm_tune.evaluate", "admm_tune.problem", "admm_tune.journal", "sklearn"),
    "problem.py": ("admm_tune.optim", "admm_tune.evaluate", "admm_tune.parallel", "admm_tune.runner", "admm_tune.cli"),
    # The problem loader checks deployment spaces against the backends' capabilities (a leaf layer) and
    # reads timing settings; it never touches the evaluators.
    "deployment.py": ("admm_tune.optim", "admm_tune.evaluate.pipeline", "admm_tune.evaluate.deploy",
                      "admm_tune.evaluate.function", "admm_tune.evaluate.export", "admm_tune.journal",
                      "admm_tune.runner", "admm_tune.result", "admm_tune.cli"),
    "evaluate/backends": ("admm_tune.evaluate.deploy", "admm_tune.evaluate.pipeline", "admm_tune.problem",
                          "admm_tune.deployment", "admm_tune.optim", "admm_tune.journal", "admm_tune.result"),
}


def imports(path: Path) -> set[str]:
    """Absolute names of the modules a source file imports."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_no_module_reaches_against_the_flow(part):
    target = PACKAGE / part
    files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
    assert files
    for file in files:
        bad = sorted(n for n in imports(file) if n.startswith(FORBIDDEN[part]))
        assert not bad, f"{file.relative_to(PACKAGE.parent)} imports {bad}"


def test_nothing_imports_the_cli():
    for file in PACKAGE.rglob("*.py"):
        if file.name != "cli.py":
            assert not any(n.startswith("admm_tune.cli") for n in imports(file)), file
