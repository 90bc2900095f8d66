"""The backtest service: strategies run on market data history, kept per user."""
