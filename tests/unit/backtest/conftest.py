"""Bars the backtest tests share: backtesting.py's bundled GOOG daily data."""

from __future__ import annotations

import polars as pl
import pytest


@pytest.fixture(scope="session")
def goog() -> pl.DataFrame:
    """GOOG daily bars 2004-2013 as backtesting.py ships them, in our column names."""
    from backtesting.test import GOOG

    return pl.from_pandas(GOOG.reset_index().rename(columns={"index": "timestamp"}))
