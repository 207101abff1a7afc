"""Choose a pipeline and its deployment together under a latency bound, then check its ONNX graph against sklearn.

    python examples/latency_constrained.py [EVALUATIONS] [P95_MS]
"""

import sys

import numpy as np
from sklearn.datasets import load_digits

import admm_tune
from admm_tune import AutoPipelineClassifier

if __name__ == "__main__":
    evaluations = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    bound = float(sys.argv[2]) if len(sys.argv) > 2 else 0.05
    print(admm_tune.list_backends()[["backend", "available", "reason"]].to_string(index=False))

    X, y = load_digits(return_X_y=True)
    model = AutoPipelineClassifier(deployment="cpu", constraints={"latency_p95_ms": bound, "model_size_kb": 200},
                                   max_evals=evaluations, random_state=0).fit(X, y)
    d = model.deployment_
    print(f"\nbest: {model.best_params_['estimator']} on {d['backend']} {d['precision']} {d['knobs']}")
    print(f"CV balanced accuracy {model.best_score_:.4f}; p95 {d['measured']['latency_p95_ms'] * 1e3:.1f} us "
          f"(bound {bound * 1e3:.0f} us), {d['measured']['model_size_kb']:.1f} kB")
    trials = model.result_.trials
    print(f"{int(trials['feasible'].astype(bool).sum())} of {len(trials)} evaluations met every constraint")

    path = model.export_onnx("admm_runs/deployed/digits.onnx")  # admm_runs/ is ignored by git
    import onnxruntime as ort

    session = ort.InferenceSession(str(path))
    labels = session.run(None, {session.get_inputs()[0].name: X[:10].astype(np.float32)})[0]
    expected = model.predict(X[:10])
    print("ONNX Runtime predicts", labels, "| scikit-learn", expected)
    if not np.array_equal(labels.ravel(), expected):
        sys.exit(f"mismatch: the exported graph disagrees with scikit-learn on {int((labels.ravel() != expected).sum())}"
                 " of 10 rows")
