"""Train the wider, deeper CNN of ``problems/models/digits_wide_cnn.onnx`` (4.6 MB) with PyTorch's CPU build.

    python examples/train_digits_wide_cnn.py [OUT_DIR]        # default admm_runs/models
    python examples/train_digits_wide_cnn.py problems/models  # regenerate the committed files

Needs PyTorch (the optional extra ``admm_tune[train]``, a CPU build); the
problems and tests that use the written graph do not.  The data ship with
scikit-learn, offline: its 8×8 digits, upscaled bilinearly to 32×32 and
distorted by a random affine map (rotation ±15°, scale 0.85–1.15, shift ±3
pixels) plus Gaussian pixel noise (σ 0.4, pixels in [0, 1]), a fresh
distortion per training row and epoch.  The 1797 images are split
as for the small CNN (``examples/train_digits_cnn.py``: seed 0, 1200
training images, 597 held out); the held-out images, each distorted once
with a fixed seed, are written with their labels to
``digits_wide_cnn_eval.npz``: harder rows than the clean digits (held-out
accuracy 0.93 rather than 0.98), more of them near a decision boundary,
where compression flips predictions.

Network (1.14 M parameters): Conv(1→32) → ReLU → MaxPool 2 → Conv(32→64) →
ReLU → MaxPool 2 → Conv(64→128) → ReLU → Flatten → Gemm(8192→128) → ReLU →
Gemm(128→10), 3×3 convolutions with padding 1; input ``input``
``float32[N, 1, 32, 32]`` (pixels / 16), output ``logits``.  The graph is
written with ``onnx.helper`` from the trained weights (opset 17, a dynamic
batch dimension), so no exporter is involved.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F

SEED, N_TRAIN, EPOCHS, BATCH, LR, SIZE, NOISE = 0, 1200, 25, 64, 2e-3, 32, 0.4


def network() -> nn.Sequential:
    """The CNN, layer names as in the ONNX graph's initialisers."""
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(128 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10))


def distort(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``[N, 1, 32, 32]`` under its own random rotation, scale and shift, plus Gaussian pixel noise."""
    n = len(x)
    u = torch.rand(n, 4, generator=generator)
    angle = (u[:, 0] * 2 - 1) * math.radians(15)
    scale = 0.85 + 0.3 * u[:, 1]
    shift = (u[:, 2:] * 2 - 1) * (3 / (SIZE / 2))  # ±3 pixels in normalised coordinates
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    moved = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    return moved + NOISE * torch.randn(moved.shape, generator=generator)


def to_onnx(model: nn.Sequential, name: str = "digits_wide_cnn") -> onnx.ModelProto:
    """The trained network as an ONNX graph (opset 17): ``input`` ``[N, 1, 32, 32]`` → ``logits`` ``[N, 10]``.

    Writes the layers these networks use: ``Conv2d`` (3×3, padding 1), ``MaxPool2d`` (2), ``ReLU``, ``Flatten`` and
    ``Linear`` (as ``Gemm``).
    """
    weights = {k.replace(".", "_"): v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    nodes, x = [], "input"
    for i, layer in enumerate(model):
        out = f"t{i}"
        if isinstance(layer, nn.Conv2d):
            nodes.append(helper.make_node("Conv", [x, f"{i}_weight", f"{i}_bias"], [out], pads=[1, 1, 1, 1],
                                          kernel_shape=[3, 3]))
        elif isinstance(layer, nn.MaxPool2d):
            nodes.append(helper.make_node("MaxPool", [x], [out], kernel_shape=[2, 2], strides=[2, 2]))
        elif isinstance(layer, nn.ReLU):
            nodes.append(helper.make_node("Relu", [x], [out]))
        elif isinstance(layer, nn.Flatten):
            nodes.append(helper.make_node("Flatten", [x], [out], axis=1))
        else:
            nodes.append(helper.make_node("Gemm", [x, f"{i}_weight", f"{i}_bias"], [out], transB=1))
        x = out
    nodes[-1].output[0] = "logits"
    graph = helper.make_graph(nodes, name,
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, SIZE, SIZE])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="admm_tune")
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def main(out: Path, name: str = "digits_wide_cnn", make: Callable[[], nn.Sequential] = network,
         script: str = "examples/train_digits_wide_cnn.py") -> dict[str, float]:
    """Train the network ``make()`` builds; write ``{name}.onnx``, ``{name}.json`` and the held-out rows
    ``digits_wide_cnn_eval.npz`` (the same for every network trained here) into ``out``."""
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # the same sums in the same order: the same weights on any machine with this build
    digits = load_digits()
    small = torch.tensor(digits.images / 16.0, dtype=torch.float32)[:, None]
    x = F.interpolate(small, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    y = torch.tensor(digits.target, dtype=torch.int64)
    order = np.random.default_rng(SEED).permutation(len(x))  # the small CNN's split
    train_rows, held_out = torch.tensor(order[:N_TRAIN]), torch.tensor(order[N_TRAIN:])
    generator = torch.Generator().manual_seed(SEED)
    model = make()
    optimiser = torch.optim.Adam(model.parameters(), lr=LR)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, EPOCHS)
    for _ in range(EPOCHS):
        model.train()
        perm = train_rows[torch.randperm(N_TRAIN, generator=generator)]
        for start in range(0, N_TRAIN, BATCH):
            idx = perm[start:start + BATCH]
            optimiser.zero_grad()
            F.cross_entropy(model(distort(x[idx], generator)), y[idx]).backward()
            optimiser.step()
        schedule.step()
    model.eval()
    held_x = distort(x[held_out], torch.Generator().manual_seed(SEED + 1))
    train_x = distort(x[train_rows], torch.Generator().manual_seed(SEED + 2))
    with torch.no_grad():
        acc = {"train_accuracy": float((model(train_x).argmax(1) == y[train_rows]).float().mean()),
               "held_out_accuracy": float((model(held_x).argmax(1) == y[held_out]).float().mean())}
    out.mkdir(parents=True, exist_ok=True)
    onnx.save_model(to_onnx(model, name), out / f"{name}.onnx")
    np.savez_compressed(out / "digits_wide_cnn_eval.npz", input=held_x.numpy().astype(np.float32),
                        labels=y[held_out].numpy())
    facts = {**acc, "parameters": sum(p.numel() for p in model.parameters()), "train_rows": N_TRAIN,
             "held_out_rows": int(len(held_out)), "seed": SEED, "epochs": EPOCHS, "torch": torch.__version__,
             "script": script,
             "note": "train_accuracy on the training images distorted once more (seed 2); held_out_accuracy on the "
                     "distorted held-out images of digits_wide_cnn_eval.npz (never trained on)"}
    (out / f"{name}.json").write_text(json.dumps(facts, indent=2) + "\n")
    return acc


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("admm_runs") / "models"))
