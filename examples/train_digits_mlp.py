"""Train the wide MLP of ``problems/models/digits_mlp.onnx`` (8.4 MB) with PyTorch's CPU build.

    python examples/train_digits_mlp.py [OUT_DIR]        # default admm_runs/models
    python examples/train_digits_mlp.py problems/models  # regenerate the committed files

The model where compression pays at batch 1: one row makes every layer a
matrix-vector product, so a call reads all 2.1 M weights once and does
little arithmetic with each: int8 weights (a quarter of the bytes) or bf16
ones (half) are what make it faster, where the CNNs' convolutions are
bound by arithmetic.  Trained exactly as the wide CNN
(``examples/train_digits_wide_cnn.py``: the same distorted 32×32 digits,
split, seed, optimiser and epochs) and evaluated on the same held-out rows
(``digits_wide_cnn_eval.npz``, written again, byte for byte).

Network (2.11 M parameters): Flatten → Gemm(1024→1024) → ReLU →
Gemm(1024→1024) → ReLU → Gemm(1024→10); input ``input``
``float32[N, 1, 32, 32]``, output ``logits``, written with ``onnx.helper``.
Needs PyTorch (the optional extra ``admm_tune[train]``, a CPU build).
"""

from __future__ import annotations

import sys
from pathlib import Path

from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the wide CNN's script, beside this one
from train_digits_wide_cnn import SIZE, main  # noqa: E402

WIDTH = 1024


def network() -> nn.Sequential:
    """The MLP, layer names as in the ONNX graph's initialisers."""
    return nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH), nn.ReLU(),
                         nn.Linear(WIDTH, 10))


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("admm_runs") / "models"
    print(main(out, "digits_mlp", network, "examples/train_digits_mlp.py"))
