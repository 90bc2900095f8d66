"""Pre-trade risk rules: the checks an order passes before it may rest or fill.

Pure functions of an order, the account's figures, the market and the limits, so
the risk service applies them live (its I/O edge is `services/risk`) and the
backtest engine can apply the very same rules on history.
"""
