"""Every snippet of the README runs as written, with tiny budgets, in a scratch directory.

The Python snippets run in order in one namespace (a later one may use an
earlier one's ``result``), the command lines in order through the installed
``admm-tune``; only their budgets are made tiny.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

TINY = [  # (pattern, replacement): every budget of the README made a few evaluations
    (r'("evaluations"\s*:\s*)\d+', r"\g<1>3"),
    (r"(evaluations\s*=\s*)\d+", r"\g<1>3"),
    (r"(budget\s*=\s*)\d+", r"\g<1>3"),
    (r"(max_evals\s*=\s*)\d+", r"\g<1>3"),
    (r"(--budget\s+)\S+", r"\g<1>3"),
    (r"(--budgets\s+)\S+", r"\g<1>2,3s"),
    (r"(--seeds\s+)\S+", r"\g<1>0"),
]


def snippets(language: str) -> list[str]:
    """The README's fenced blocks in ``language``, in order."""
    return [textwrap.dedent(block) for block in re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)]


def tiny(code: str) -> str:
    for pattern, replacement in TINY:
        code = re.sub(pattern, replacement, code)
    return code


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A directory where the README's relative paths (problems/...) resolve and its files land."""
    (tmp_path / "problems").symlink_to(ROOT / "problems")
    (tmp_path / "search_spaces").symlink_to(ROOT / "search_spaces")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_has_python_and_command_line_snippets():
    assert len(snippets("python")) >= 6 and len(snippets("sh")) >= 1
    assert all(tiny(code) != code for code in snippets("python") if re.search(r"evaluations|budget=|max_evals", code))


WRITTEN = {"report.html": "report.html", '"served"': "served/model.onnx"}
"""What a snippet that names it (key) must have written (value), relative to where it ran."""


@pytest.mark.slow
@pytest.mark.parametrize("i", range(len(snippets("python"))))
def test_every_python_snippet_runs(scratch, i):
    """Each snippet runs as written: alone, in a fresh namespace, with its own imports (one test each, so that
    the suite's processes share them out)."""
    code = snippets("python")[i]
    try:
        exec(compile(tiny(code), f"README.md python snippet {i}", "exec"), {"__name__": "__main__"})
    except Exception as exc:  # say which snippet
        raise AssertionError(f"README python snippet {i} failed: {exc!r}\n{code}") from exc
    for named, path in WRITTEN.items():
        assert named not in code or (scratch / path).is_file(), path


def test_the_readme_writes_what_its_snippets_check():
    assert all(any(named in code for code in snippets("python")) for named in WRITTEN)


@pytest.mark.slow
def test_every_command_line_runs(scratch):
    command = Path(sys.executable).with_name("admm-tune")  # the installed entry point, as the README says
    assert command.is_file(), "install the package (make install) so that .venv/bin/admm-tune exists"
    for block in snippets("sh"):
        for line in block.splitlines():
            line = line.split("#")[0].strip()
            if not line.startswith("admm-tune"):
                continue
            args = shlex.split(tiny(line))[1:]
            out = subprocess.run([str(command), *args, *(["--no-progress"] if args[0] == "run" else [])],
                                 capture_output=True, text=True, timeout=600)
            assert out.returncode == 0, f"{line}\n{out.stderr[-3000:]}"
    assert (scratch / "admm_runs" / "digits" / "report.html").is_file()
    assert (scratch / "admm_runs" / "sweep-a" / "results.csv").is_file()


RUNNABLE_DOCS = ["estimators.md", "serving.md"]
"""Pages of docs/ whose python blocks run as written (the others show paths and addresses of the reader's own)."""


def blocks(page: str) -> list[str]:
    """The python blocks of ``docs/<page>``, in order."""
    return re.findall(r"```python\n(.*?)```", (ROOT / "docs" / page).read_text(), re.S)


@pytest.mark.slow
@pytest.mark.parametrize("page, i", [(page, i) for page in RUNNABLE_DOCS for i in range(len(blocks(page)))])
def test_every_python_block_of_the_runnable_docs_runs(page, i, scratch):
    code = blocks(page)[i]
    try:
        exec(compile(tiny(code), f"docs/{page} python block {i}", "exec"), {"__name__": "__main__"})
    except Exception as exc:
        raise AssertionError(f"docs/{page} python block {i} failed: {exc!r}\n{code}") from exc


def test_every_runnable_page_has_python_blocks():
    assert all(blocks(page) for page in RUNNABLE_DOCS)


def test_every_figure_of_the_benchmarks_table_is_in_its_results_file():
    section = README[README.index("## Benchmarks"):README.index("## Layout")]
    rows = [r for r in section.splitlines() if r.startswith("| `")]
    files = {f.name for f in (ROOT / "benchmarks" / "results").glob("*.md")}
    linked = set()
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        file = re.search(r"\(benchmarks/results/([\w.]+)\)", cells[3]).group(1)
        linked.add(file)
        text = (ROOT / "benchmarks" / "results" / file).read_text()
        for figure in re.findall(r"\d[\d,]*\.\d+|\d+/\d+", cells[2]):
            assert figure in text, f"{file}: {figure} (quoted in the README) is not in the file"
    assert linked == files  # every results file is in the table
