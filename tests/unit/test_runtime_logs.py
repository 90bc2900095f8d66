"""The runtime's logging: JSON lines, and grpc's late-registration notice dropped."""

from __future__ import annotations

import json
import logging

import pytest

from cift.runtime.logs import configure_logging


@pytest.fixture
def restore_logging() -> object:
    root = logging.getLogger()
    grpc_logger = logging.getLogger("grpc._cython.cygrpc")
    handlers, level, filters = root.handlers[:], root.level, grpc_logger.filters[:]
    yield None
    root.handlers[:], grpc_logger.filters[:] = handlers, filters
    root.setLevel(level)


def test_grpc_late_registration_notice_is_dropped_and_other_grpc_warnings_kept(
    restore_logging: object, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("risk", "INFO", "json")
    grpc_logger = logging.getLogger("grpc._cython.cygrpc")
    grpc_logger.warning("Cannot register method handlers once server has started")
    grpc_logger.warning("Something else went wrong")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["msg"] for line in lines] == ["Something else went wrong"]
    assert lines[0]["service"] == "risk" and lines[0]["level"] == "warning"
