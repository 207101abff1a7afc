"""``load_model.py``: the script written beside an exported graph, which serves it without admm_tune.

It exposes ``load(folder)``, whose :class:`~admm_tune.serving.model.Model`
predicts from the user's raw rows (a DataFrame, a list of records or one
record; ``docs/serving.md``), and needs only the backend's own package
(onnxruntime or openvino) and numpy (pandas only to pass a DataFrame).  It
is assembled from source, so that what a service runs is what the search
timed: :mod:`admm_tune.serving.rows` (the data preparation the estimator's
``predict`` uses too), :mod:`admm_tune.serving.model`, and the backend's
``open_session`` and ``infer`` (:meth:`~.backends.base.Backend.serving_functions`).
The graph is saved as the backend compiles it (lowered where it needs that,
:meth:`~.backends.base.Backend.prepare`) and the session's settings are data
in ``deployment.json`` (:meth:`~.backends.base.Backend.settings`).
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

import onnx

from ..serving import model as serving_model
from ..serving import rows as serving_rows
from .graph import string_codes

SHIPPED = "# -- SHIPPED:"
"""The line of a serving module after which its source goes into ``load_model.py``."""

HEADER = '''"""Serve the pipeline admm_tune chose, on {backend} ({precision}), with its tuned knobs, from raw rows.

Needs only {package} and numpy (pandas only to pass a DataFrame):

    from load_model import load
    model = load("{folder_hint}")            # the folder of deployment.json
    model.predict([{{"column": value, ...}}])  # records as a service receives them (JSON), or a DataFrame
{proba_hint}
A record without a column is a row whose value is missing; extra columns are
ignored.  `python load_model.py` predicts deployment.json's example rows.
"""
'''

SCORE_HINTS = {"probabilities": "    model.predict_proba(rows)              # class probabilities\n",
               "decision_function": "    model.decision_function(rows)          # decision scores (no probabilities)\n"}

MAIN = '''

def load(folder: str | pathlib.Path | None = None) -> Model:
    """The deployment in ``folder`` (default: this file's folder), ready to ``predict`` raw rows."""
    return Model.from_folder(folder or pathlib.Path(__file__).resolve().parent, open_session, infer)


if __name__ == "__main__":
    model = load()
    examples = model.spec["example_rows"]
    print("predict", repr(model.predict(examples)))
    if model.classes_ is not None and len(model.spec["outputs"]) > 1:
        scores = model.spec.get("scores", "probabilities")
        method = "decision_function" if scores == "decision_function" else "predict_proba"
        print(method, repr(getattr(model, method)(examples)))
'''


def _parts(module: ModuleType) -> tuple[list[str], str]:
    """A serving module's absolute import lines and its source after the ``SHIPPED`` line."""
    source = inspect.getsource(module)
    head, _, body = source.partition(SHIPPED)
    imports = [line for line in head.splitlines() if line.startswith(("import ", "from ")) and
               not line.startswith("from .")]
    return imports, body.split("\n", 1)[1].strip("\n")


def loader_source(backend: Any, precision: str, scores: str | None) -> str:
    """The ``load_model.py`` of a graph deployed on ``backend`` (an admm_tune backend object); ``scores``: what a
    classifier's second output holds (``"probabilities"`` or ``"decision_function"``), None for a regressor."""
    imports: list[str] = []
    bodies = []
    for module in (serving_rows, serving_model):
        lines, body = _parts(module)
        imports += [line for line in lines if line not in imports]
        bodies.append(body)
    imports.remove("from __future__ import annotations")
    functions = backend.serving_functions()
    package = functions[0].__module__.rsplit(".", 1)[-1]
    bodies.append("\n\n".join(inspect.getsource(f).strip() for f in functions))
    header = HEADER.format(backend=backend.name, precision=precision, package=package, folder_hint="path/to/folder",
                           proba_hint=SCORE_HINTS.get(scores, ""))
    return (header + "\nfrom __future__ import annotations\n\n" + "\n".join(imports) + "\n\n\n"
            + "\n\n\n".join(bodies) + "\n" + MAIN)


TYPES = {onnx.TensorProto.STRING: "string", onnx.TensorProto.INT64: "int64", onnx.TensorProto.FLOAT: "float32"}


def inputs(model: onnx.ModelProto, columns: list[dict[str, Any]] | None, names: list[str]) -> list[dict[str, Any]]:
    """``deployment.json``'s ``graph_inputs``: each graph input's name, type, table columns and string codes.

    ``columns`` is the graph's own record of which columns feed which input
    (:func:`~.export.columns`); without it, one matrix input takes every
    column of ``names`` and several inputs take one column each, in order.
    """
    if columns is None:
        graph = [i.name for i in model.graph.input]
        columns = [{"input": graph[0], "columns": list(names)}] if len(graph) == 1 else \
            [{"input": n, "columns": [c]} for n, c in zip(graph, names)]
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    codes = string_codes(model)
    out = []
    for entry in columns:
        name = entry["input"]
        described = {"name": name, "type": TYPES.get(types[name], "float32"), "columns": list(entry["columns"])}
        if name in codes:
            described["codes"] = codes[name]
        out.append(described)
    return out
