"""Fixtures of the execution integration tests against the real services (see exec_stack.py)."""

from tests.integration.execution.exec_stack import mesh

__all__ = ["mesh"]
