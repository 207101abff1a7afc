"""Free-text columns: detected, turned into TF-IDF features by the front, exported, served from raw records."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from test_serving import SERVE

import admm_tune
from admm_tune import ProblemError
from admm_tune.data import load_dataset
from admm_tune.problem import load_problem
from admm_tune.serving import prepare
from admm_tune.serving.rows import words

GOOD = ["great", "excellent", "lovely", "perfect", "works well", "a delight"]
BAD = ["terrible", "broken", "useless", "awful", "returned it", "a waste"]
THINGS = ["the product", "this item", "my order", "the box", "the seller", "delivery", "the colour", "it"]


GOOD += ["café crème", "très bien"]  # words with non-ASCII letters carry the label too
BAD += ["déçu", "naïve junk"]


def reviews(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` distinct short reviews whose words alone carry the label, beside an identifier, a number and a
    category that carry nothing; some reviews missing."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    text = [f"{rng.choice(THINGS)} was {rng.choice(GOOD if label else BAD)} and {rng.choice(THINGS)} came on "
            f"day {i}" for i, label in enumerate(y)]
    X = pd.DataFrame({"Review text": text, "order id": [f"A{i:06d}" for i in rng.permutation(n)],
                      "price": rng.normal(20, 5, n), "shop": rng.choice(["north", "south", None], n)})
    X.loc[::25, "Review text"] = None
    return X, y


def test_sentences_are_text_and_identifiers_or_long_categories_are_not():
    X, y = reviews()
    X["answer"] = np.random.default_rng(1).choice(["not at all likely", "somewhat likely to come back",
                                                   "very likely to come back"], len(X))
    data = load_dataset({"X": X, "y": y})
    assert data.text == ["Review text"] and set(data.categorical) == {"order id", "shop", "answer"}
    assert data.X["Review text"].iloc[0] == "" and data.X["Review text"].iloc[1] == words(X["Review text"][1])
    assert [c["kind"] for c in data.schema["columns"]] == ["text", "category", "number", "category", "category"]
    assert load_dataset({"X": X, "y": y, "text": []}).text == []  # the user's say wins
    assert load_dataset({"X": X, "y": y, "text": ["answer"]}).text == ["answer"]
    with pytest.raises(ProblemError, match=r"^data\.text\[0\]: column 'price' is not a string column"):
        load_dataset({"X": X, "y": y, "text": ["price"]})


def test_the_serving_preparation_of_text_is_the_training_one():
    X, y = reviews(60)
    data = load_dataset({"X": X, "y": y})
    prepared = prepare([{"Review text": v} for v in (None, float("nan"), pd.NA, "", "Très BIEN", 12, True,
                                                    "won't-stop a_b 0/10 ΣΊΣΥΦΟΣ")], data.schema)["Review text"]
    assert list(prepared) == ["", "", "", "", "très bien", "12", "true", "won stop a_b 10 σίσυφος"]
    assert list(prepare([{}], data.schema)["Review text"]) == [""]  # a missing key: no words
    pd.testing.assert_frame_equal(data.prepare(X), data.X)


@pytest.mark.slow
def test_a_text_column_is_searched_as_words_not_as_categories():
    # Every review is distinct: one-hot (the text read as categories) cannot generalise; TF-IDF can.  Logistic
    # regression only: which estimator the search reaches in 3 evaluations is not what is tested (measured over
    # data seeds 0-5: words 0.97-0.99, categories 0.50-0.54).
    X, y = reviews()
    problem = {"data": {"X": X, "y": y}, "objective": {"cv": 3}, "budget": {"evaluations": 3}, "seed": 0,
               "restrict": {"estimator": ["logistic_regression"], "transformer": ["none"]}}
    words = admm_tune.fit(problem, progress=False, storage="memory")
    categories = admm_tune.fit({**problem, "data": {"X": X, "y": y, "text": []}}, progress=False, storage="memory")
    assert words.best.metrics["cv_score"] > 0.9 > 0.75 > categories.best.metrics["cv_score"]
    assert any("read as free text" in n for n in words.problem.notes)


def test_backends_that_cannot_tokenize_are_left_out_for_text_data():
    X, y = reviews(80)
    problem = load_problem({"data": {"X": X, "y": y}, "deployment": "cpu"})
    assert problem.space.module("backend").names == ("onnxruntime",)
    assert any("backend openvino left out: the text column(s) Review text" in n for n in problem.notes)
    with pytest.raises(ProblemError, match=r"^restrict\.backend: keeps only openvino"):
        load_problem({"data": {"X": X, "y": y}, "deployment": "cpu", "restrict": {"backend": ["openvino"]}})
    assert "openvino" in load_problem({"data": {"X": X, "y": y, "text": []}, "deployment": "cpu"}
                                      ).space.module("backend").names


DRIFT = [("missing (None)", None), ("missing (key)", ...), ("empty", ""), ("only unseen words", "zebra quokka"),
         ("upper case", "THE PRODUCT WAS GREAT"), ("a number", 42), ("accents", "Très déçu: a waste"),
         ("punctuation only", "?!..."), ("long", "great " * 500), ("apostrophes", "won't work, it's half-baked"),
         ("non-ASCII words", "ΣΊΣΥΦΟΣ ǅemal café naïve was lovely"), ("underscores, digits", "a_b 0/10 1-star")]


@pytest.mark.slow
def test_the_exported_text_model_serves_raw_records_as_the_pipeline_predicts(tmp_path):
    """Served by load_model.py in a fresh process without admm_tune, scikit-learn or pandas: drifted, missing and
    unseen text gives the pipeline's probabilities (a row without any known word too: not NaN)."""
    X, y = reviews(200)
    result = admm_tune.fit({"name": "text", "data": {"X": X, "y": y}, "objective": {"cv": 3},
                            "restrict": {"estimator": ["logistic_regression"], "scaler": ["standard"],
                                         "transformer": ["none"], "precision": ["fp32"]},
                            "deployment": {"timing": {"seconds": 0.02, "min_runs": 5}}, "budget": {"evaluations": 2},
                            "seed": 0}, run_dir=tmp_path, progress=False)
    assert result.feasible, result.final["verification"]
    record = result.problem.data.examples[1]
    corpus = [(what, {k: v for k, v in {**record, "Review text": value}.items() if v is not ...})
              for what, value in DRIFT]
    (tmp_path / "corpus.json").write_text(json.dumps(corpus))
    result.export(tmp_path)
    out = subprocess.run([sys.executable, "-I", "-c", SERVE], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    served = json.loads((tmp_path / "served.json").read_text())
    for what, row in corpus:
        want = result.pipeline.predict_proba(result.problem.data.prepare([row]))[0]
        assert np.isfinite(served[what][1][0]).all(), what
        np.testing.assert_allclose(served[what][1][0], want, atol=1e-4, err_msg=what)
