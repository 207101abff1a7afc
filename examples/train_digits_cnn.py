"""Train the small CNN of ``problems/models/digits_cnn.onnx`` with NumPy alone, and write it as ONNX.

    python examples/train_digits_cnn.py [OUT_DIR]     # default admm_runs/models
    python examples/train_digits_cnn.py problems/models   # regenerate the committed files (bit-identical)

Conv(1→8, 3×3, pad 1) → ReLU → Conv(8→16, 3×3, pad 1) → ReLU → Flatten →
Gemm(1024→10), on scikit-learn's 8×8 digits (pixels / 16, shape
``[N, 1, 8, 8]``), trained by plain mini-batch SGD with momentum.  The run
is deterministic (seed 0): the rows are split once into 1200 training rows
and 597 held-out rows; the held-out rows are written with their labels to
``digits_cnn_eval.npz`` (the evaluation data of
``problems/digits_cnn_deploy.yaml``), and the accuracies on both to
``digits_cnn.json``.  The graph is written with ``onnx.helper`` (opset 17,
a dynamic batch dimension), so neither training nor the problems need
PyTorch.  Like every example it writes under ``admm_runs/`` unless told
otherwise; ``tests/test_deploy_problem.py`` checks that it reproduces the
committed graph.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

SEED, N_TRAIN, EPOCHS, BATCH, LR, MOMENTUM = 0, 1200, 30, 32, 0.05, 0.9
C1, C2, CLASSES = 8, 16, 10


def im2col(x: np.ndarray) -> np.ndarray:
    """``[N, C, 8, 8]`` → ``[N, 64, C*9]``: the 3×3 patches (zero padding 1) of every pixel."""
    n, c, h, w = x.shape
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.stack([p[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=2)  # N, C, 9, H, W
    return cols.reshape(n, c * 9, h * w).transpose(0, 2, 1)


def col2im(cols: np.ndarray, c: int) -> np.ndarray:
    """The adjoint of :func:`im2col`: ``[N, 64, C*9]`` → ``[N, C, 8, 8]``."""
    n = cols.shape[0]
    g = cols.transpose(0, 2, 1).reshape(n, c, 9, 8, 8)
    p = np.zeros((n, c, 10, 10), dtype=cols.dtype)
    for k in range(9):
        i, j = divmod(k, 3)
        p[:, :, i:i + 8, j:j + 8] += g[:, :, k]
    return p[:, :, 1:9, 1:9]


def forward(params: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Logits and what the backward pass needs."""
    n = len(x)
    c1 = im2col(x)                                         # N, 64, 9
    a1 = np.maximum(c1 @ params["w1"].reshape(C1, -1).T + params["b1"], 0)   # N, 64, C1
    h1 = a1.transpose(0, 2, 1).reshape(n, C1, 8, 8)
    c2 = im2col(h1)                                        # N, 64, C1*9
    a2 = np.maximum(c2 @ params["w2"].reshape(C2, -1).T + params["b2"], 0)   # N, 64, C2
    flat = a2.transpose(0, 2, 1).reshape(n, -1)            # N, C2*64 (channel-major, as ONNX Flatten)
    logits = flat @ params["w3"].T + params["b3"]
    return logits, {"c1": c1, "a1": a1, "c2": c2, "a2": a2, "flat": flat}


def gradients(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Gradients of the mean cross-entropy."""
    n = len(x)
    logits, s = forward(params, x)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(n), y] -= 1
    d = p / n
    g = {"w3": d.T @ s["flat"], "b3": d.sum(axis=0)}
    da2 = (d @ params["w3"]).reshape(n, C2, 64).transpose(0, 2, 1) * (s["a2"] > 0)       # N, 64, C2
    g["w2"] = np.einsum("npo,npk->ok", da2, s["c2"]).reshape(params["w2"].shape)
    g["b2"] = da2.sum(axis=(0, 1))
    dh1 = col2im(da2 @ params["w2"].reshape(C2, -1), C1)                                   # N, C1, 8, 8
    da1 = dh1.reshape(n, C1, 64).transpose(0, 2, 1) * (s["a1"] > 0)
    g["w1"] = np.einsum("npo,npk->ok", da1, s["c1"]).reshape(params["w1"].shape)
    g["b1"] = da1.sum(axis=(0, 1))
    return g


def train(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Mini-batch SGD with momentum, He initialisation."""
    params = {"w1": rng.normal(0, np.sqrt(2 / 9), (C1, 1, 3, 3)), "b1": np.zeros(C1),
              "w2": rng.normal(0, np.sqrt(2 / (C1 * 9)), (C2, C1, 3, 3)), "b2": np.zeros(C2),
              "w3": rng.normal(0, np.sqrt(1 / (C2 * 64)), (CLASSES, C2 * 64)), "b3": np.zeros(CLASSES)}
    velocity = {k: np.zeros_like(v) for k, v in params.items()}
    for epoch in range(EPOCHS):
        lr = LR * (0.5 if epoch >= EPOCHS * 2 // 3 else 1.0)
        order = rng.permutation(len(x))
        for start in range(0, len(x), BATCH):
            idx = order[start:start + BATCH]
            for k, g in gradients(params, x[idx], y[idx]).items():
                velocity[k] = MOMENTUM * velocity[k] - lr * (g + 1e-4 * params[k])
                params[k] += velocity[k]
    return {k: v.astype(np.float32) for k, v in params.items()}


def to_onnx(params: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The network as an ONNX graph (opset 17): input ``input`` ``[N, 1, 8, 8]``, output ``logits`` ``[N, 10]``."""
    inits = [numpy_helper.from_array(v, k) for k, v in params.items()]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["conv1"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["conv1"], ["relu1"]),
        helper.make_node("Conv", ["relu1", "w2", "b2"], ["conv2"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["conv2"], ["relu2"]),
        helper.make_node("Flatten", ["relu2"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w3", "b3"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(nodes, "digits_cnn",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="admm_tune")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def main(out: Path) -> dict[str, float]:
    """Train, write ``digits_cnn.onnx``, ``digits_cnn_eval.npz`` and ``digits_cnn.json`` into ``out``."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float64)[:, None]
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(x))
    train_rows, held_out = order[:N_TRAIN], order[N_TRAIN:]
    with threadpool_limits(1):  # one BLAS thread: the same sums in the same order, so the same bits anywhere
        params = train(x[train_rows], y[train_rows], rng)
    acc = {name: float((forward(params, x[rows].astype(np.float32))[0].argmax(1) == y[rows]).mean())
           for name, rows in (("train_accuracy", train_rows), ("held_out_accuracy", held_out))}
    out.mkdir(parents=True, exist_ok=True)
    onnx.save_model(to_onnx(params), out / "digits_cnn.onnx")
    np.savez_compressed(out / "digits_cnn_eval.npz", input=x[held_out].astype(np.float32), labels=y[held_out])
    facts = {**acc, "train_rows": int(len(train_rows)), "held_out_rows": int(len(held_out)), "seed": SEED,
             "epochs": EPOCHS, "script": "examples/train_digits_cnn.py",
             "note": "digits_cnn_eval.npz holds the held-out rows (never trained on) and their labels"}
    (out / "digits_cnn.json").write_text(json.dumps(facts, indent=2) + "\n")
    return acc


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("admm_runs") / "models"))
