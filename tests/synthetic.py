"""Synthetic tables more than one test module fits, and a recorder of the estimators a module makes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def store_sales(rows: int = 3000, stores: int = 60, seed: int = 12) -> pd.DataFrame:
    """Sales of 60 stores whose response to a price change (``x``) is each store's own: a store's
    codes in one order (its mean sales) say little of its slope, which a split needs to know."""
    rng = np.random.default_rng(seed)
    store = rng.integers(0, stores, rows)
    x = rng.normal(0, 1, rows)
    sales = rng.normal(0, 2, stores)[store] * x + rng.normal(0, 1, stores)[store] + rng.normal(0, 0.5, rows)
    return pd.DataFrame({"store": [f"store {k}" for k in store], "x": x, "other": rng.normal(0, 1, rows),
                         "sales": sales})


def recorded_params(monkeypatch: Any, module: Any) -> list[dict[str, Any]]:
    """The params of every estimator ``module`` makes from now on (its ``estimator``, wrapped)."""
    made: list[dict[str, Any]] = []
    original = module.estimator
    monkeypatch.setattr(module, "estimator", lambda config, task, params: made.append(params) or original(
        config, task, params))
    return made
