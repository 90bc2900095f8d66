"""Fixtures of the risk integration tests (defined in risk_it.py, shared with the tests)."""

from tests.integration.risk.risk_it import account, marketdata_address, risk, risk_service

__all__ = ["account", "marketdata_address", "risk", "risk_service"]
