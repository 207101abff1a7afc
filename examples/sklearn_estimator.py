"""The search as a scikit-learn estimator: inside cross-validation, a grid search and a pickle.

    python examples/sklearn_estimator.py [EVALUATIONS]
"""

import pickle
import sys

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split

from admm_tune import AutoPipelineClassifier

if __name__ == "__main__":
    evaluations = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)

    model = AutoPipelineClassifier(max_evals=evaluations, random_state=0).fit(X_train, y_train)
    print("chosen:", model.best_params_["scaler"], "->", model.best_params_["transformer"], "->",
          model.best_params_["estimator"], f"(CV {model.best_score_:.4f})")
    print(f"held-out accuracy {model.score(X_test, y_test):.4f}")

    scores = cross_val_score(AutoPipelineClassifier(max_evals=max(3, evaluations // 3), random_state=0), X, y, cv=3)
    print("nested CV accuracy", scores.round(4))

    grid = GridSearchCV(AutoPipelineClassifier(max_evals=max(3, evaluations // 3), random_state=0),
                        {"cv": [3, 5]}, cv=2).fit(X_train, y_train)
    print("grid search chose cv =", grid.best_params_["cv"])

    again = pickle.loads(pickle.dumps(model))
    assert (again.predict(X_test) == model.predict(X_test)).all()
    print("pickled and restored: same predictions")
