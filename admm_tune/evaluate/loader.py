"""``load_model.py``: the script written beside an exported graph, which runs it without admm_tune.

It needs the backend's own package (onnxruntime or openvino), numpy and
pandas, nothing else: the graph is saved as the backend compiles it (lowered
where it needs that, :meth:`~.backends.base.Backend.prepare`), the session's
settings are data in ``deployment.json`` (:meth:`~.backends.base.Backend.settings`),
and the script holds the source of the backend module's ``open_session``
and ``infer``, the very functions the search compiled and ran it with.
"""

from __future__ import annotations

import inspect
from typing import Any

import onnx

from .graph import string_codes

TEMPLATE = '''"""Run the pipeline admm_tune chose, on {backend} ({precision}), with its tuned knobs.

Needs only {package}, numpy and pandas.  Replace the example rows with yours:
a table with the columns that deployment.json's "graph_inputs" name, categorical
values as strings (a missing one as "<missing>", as admm_tune prepared them).
"""
from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


{functions}


def feeds(rows: pd.DataFrame, inputs: list) -> dict:
    """The graph's inputs for a table of rows: each input takes its columns, as its declared type."""
    out = {{}}
    for graph_input in inputs:
        part = rows[graph_input["columns"]]
        if "codes" in graph_input:  # strings the graph takes as integer codes (-1: a value never seen)
            codes = graph_input["codes"]
            array = np.array([[codes.get(str(v), -1) for v in row] for row in part.to_numpy()], dtype=np.int64)
        elif graph_input["type"] == "string":
            array = part.astype(str).to_numpy(dtype=object)
        else:
            array = np.ascontiguousarray(part.to_numpy(dtype=np.float32))
        out[graph_input["name"]] = array.reshape(len(part), -1)
    return out


if __name__ == "__main__":
    here = pathlib.Path(__file__).resolve().parent
    spec = json.loads((here / "deployment.json").read_text())
    session = open_session(str(here / spec["model"]), spec["session"])
    rows = pd.DataFrame(spec["example_rows"])
    for name, output in zip(spec["outputs"], infer(session, feeds(rows, spec["graph_inputs"]))):
        print(name, repr(output))
'''

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


def loader_source(backend: Any, precision: str) -> str:
    """The ``load_model.py`` of a graph deployed on ``backend`` (an admm_tune backend object)."""
    home = inspect.getmodule(inspect.getmodule(type(backend)).open_session)
    functions = "\n\n".join(inspect.getsource(f) for f in (home.open_session, home.infer))
    package = home.open_session.__module__.rsplit(".", 1)[-1]
    return TEMPLATE.format(backend=backend.name, precision=precision, package=package, functions=functions.strip())
