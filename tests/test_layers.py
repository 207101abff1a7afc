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
    "problem_base.py": ("admm_tune.optim", "admm_tune.evaluate", "admm_tune.parallel", "admm_tune.runner",
                        "admm_tune.cli", "admm_tune.problem", "admm_tune.deploy_problem"),
    # The problem loader checks deployment spaces against the backends' capabilities (a leaf layer) and
    # reads timing settings; it never touches the evaluators.
    "deployment.py": ("admm_tune.optim", "admm_tune.evaluate.pipeline", "admm_tune.evaluate.deploy",
                      "admm_tune.evaluate.function", "admm_tune.evaluate.export", "admm_tune.journal",
                      "admm_tune.runner", "admm_tune.result", "admm_tune.cli"),
    "evaluate/backends": ("admm_tune.evaluate.deploy", "admm_tune.evaluate.pipeline", "admm_tune.problem",
                          "admm_tune.deployment", "admm_tune.optim", "admm_tune.journal", "admm_tune.result"),
}


def imports(path: Path, runtime_only: bool = False) -> set[str]:
    """Absolute names of the modules a source file imports, lazy ones (in functions) included; ``runtime_only``
    leaves out those under ``if TYPE_CHECKING:``, which never run."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    tree = ast.parse(path.read_text())
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                node.body = []
    for node in ast.walk(tree):
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


HEAVY = ("sklearn", "onnx", "skl2onnx", "onnxruntime", "openvino", "pandas", "dask", "distributed")
"""Libraries of the evaluators and backends: the optimiser's whole import closure reaches none of them."""


def module_file(name: str) -> Path | None:
    """The source file of an ``admm_tune`` module (a package's ``__init__.py``), or of the module holding ``name``."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        base = PACKAGE.parent.joinpath(*parts[:n])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def closure(files: list[Path]) -> tuple[set[Path], dict[str, set[str]]]:
    """Every admm_tune source file that importing ``files`` runs (packages' ``__init__`` included), and the
    outside libraries each reaches, with the files that import them."""
    seen: set[Path] = set()
    outside: dict[str, set[str]] = {}
    todo = list(files)
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        for name in imports(file, runtime_only=True):
            if not name.startswith("admm_tune"):
                outside.setdefault(name.split(".")[0], set()).add(str(file.relative_to(PACKAGE.parent)))
                continue
            parts = name.split(".")
            todo += [init for k in range(1, len(parts)) if (init := PACKAGE.parent.joinpath(*parts[:k]) /
                                                            "__init__.py").is_file()]
            found = module_file(name)
            if found is not None:
                todo.append(found)
    return seen, outside


def test_the_optimisers_whole_import_closure_reaches_no_evaluator_or_backend_library():
    files, outside = closure(sorted((PACKAGE / "optim").rglob("*.py")))
    reached = {lib: sorted(by) for lib, by in outside.items() if lib in HEAVY}
    assert not reached, f"admm_tune.optim reaches {reached}"
    assert not any("evaluate" in f.parts for f in files)
    assert closure([PACKAGE / "settings.py"])[0] == {PACKAGE / "settings.py"}  # the shared vocabulary is a leaf


def test_importing_the_package_imports_no_machine_learning_library():
    import subprocess
    import sys

    import admm_tune

    code = f"import sys, admm_tune; print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    assert sorted(admm_tune.__all__) == sorted(admm_tune._LAZY)  # every public name is importable on use
    assert all(getattr(admm_tune, name) is not None for name in admm_tune.__all__)


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["run", "--help"]])
def test_the_command_lines_version_and_help_import_no_machine_learning_library(argv):
    import subprocess
    import sys

    code = ("import sys\nfrom admm_tune.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & set(%r)))" % (argv, HEAVY))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-300:]


def test_no_two_modules_import_each_other():
    """Lazy imports (in functions) included, ``if TYPE_CHECKING:`` ones left out (they never run)."""
    edges = {file: {found for name in imports(file, runtime_only=True) if name.startswith("admm_tune")
                    if (found := module_file(name)) is not None and found != file}
             for file in PACKAGE.rglob("*.py")}
    pairs = sorted({tuple(sorted(str(f.relative_to(PACKAGE)) for f in (a, b)))
                    for a, targets in edges.items() for b in targets if a in edges.get(b, set())})
    assert not pairs, pairs
