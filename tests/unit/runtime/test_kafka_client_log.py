"""librdkafka's own log lines: a refused connection it retries is a warning, the rest keep their level."""

from __future__ import annotations

import logging

import pytest

from cift.runtime.kafka import CLIENT_LOG

LINE = "%s [%s] %s"


def test_a_failed_connection_librdkafka_retries_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger=CLIENT_LOG.name):
        # As confluent-kafka logs it: syslog level 3 (error), facility FAIL.
        CLIENT_LOG.log(
            logging.ERROR,
            LINE,
            "FAIL",
            "cift-risk#consumer-3",
            "127.0.0.1:59092/bootstrap: Connect to ipv4#127.0.0.1:59092 failed: Connection refused",
        )
        CLIENT_LOG.log(logging.ERROR, LINE, "SSL", "cift-risk#consumer-3", "handshake failed")
    fail, other = caplog.records
    assert (fail.levelno, fail.levelname) == (logging.WARNING, "WARNING")
    assert "Connection refused" in fail.getMessage()
    assert (other.levelno, other.levelname) == (logging.ERROR, "ERROR")
