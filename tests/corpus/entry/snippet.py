# A user's first script: no `if __name__ == "__main__":` guard, an objective function and an estimator
# defined right here.  tests/test_entry_points.py runs it as a file, on standard input, with -c, under IPython
# and in a Jupyter kernel; N_JOBS comes from the environment.
import os

import numpy as np
from sklearn.datasets import make_classification

import admm_tune
from admm_tune import AutoPipelineClassifier

n_jobs = int(os.environ.get("N_JOBS", "1"))
space = admm_tune.SearchSpace.from_dict({"modules": [{"name": "f", "algorithms": [
    {"name": "q", "params": {"x": {"type": "float", "low": -5, "high": 5},
                             "n": {"type": "int", "low": 0, "high": 10}}}]}]})
CENTRE = 1.0


def objective(config):
    return (config["f.q.x"] - CENTRE) ** 2 + (config["f.q.n"] - 3) ** 2


problem = admm_tune.Problem(space, objective, budget=admm_tune.Budget(evaluations=6))
found = admm_tune.fit(problem, seed=0, n_jobs=n_jobs, progress=False, storage="memory")
X, y = make_classification(120, 5, random_state=0)
model = AutoPipelineClassifier(max_evals=4, random_state=0, n_jobs=n_jobs, cv=3,
                               search_space={"modules": [{"name": "estimator", "algorithms": [
                                   {"name": "logistic_regression", "class": "sklearn.linear_model.LogisticRegression"},
                                   {"name": "gaussian_nb", "class": "sklearn.naive_bayes.GaussianNB"}]}]})
model.fit(X, y)
print(f"ENTRY-OK loss={found.best.loss:.4f} evals={len(found.trials)} accuracy={np.mean(model.predict(X) == y):.3f}")
