"""Generated requests, valid and deliberately invalid, never make the gateway answer 5xx.

The security probe sent 19,166 schemathesis requests through the gateway and got 18
server errors (NUL characters reaching the database, timestamps and periods that
overflowed). This run sends the same kinds of requests to every REST operation, with
NUL characters allowed and schema-violating (negative) inputs included, signed in as
one trader, and asserts only what the probe checked: no 5xx. The schema conformance of
valid requests is `test_openapi_conformance.py`'s job.

It is a wide net, not a replay: at CI's budget (about a thousand requests, where the
probe needed thousands per server error) it did not hit the probe's exact inputs with
the shared request check switched off. Those inputs are replayed one by one in
`test_security_probe.py`, which fails without the fixes.

Sign-in is left out: every wrong password counts against the caller's address (all
tests share 127.0.0.1), and a hundred of them would throttle the other tests' logins;
its bad inputs are in `test_security_probe.py`.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error

from cift.stack.gateway import OPENAPI_PATH
from tests.e2e.e2e_client import Rest, Trader, register_and_login

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 30

schema = (
    schemathesis.openapi.from_path(OPENAPI_PATH)
    .exclude(path_regex=r"^/cift\.")
    .exclude(path_regex=r"^/v1/auth/(login|refresh)$")
)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], allow_x00=True
)


@pytest.fixture(scope="module")
def fuzzer(rest: Rest) -> Trader:
    return register_and_login(rest, "fuzzer")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    phases=[Phase.explicit, Phase.generate],
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_request_makes_the_gateway_answer_a_server_error(
    case: Case[Any], gateway_url: str, fuzzer: Trader
) -> None:
    case.call_and_validate(
        base_url=gateway_url,
        headers={"authorization": f"Bearer {fuzzer.access_token}"},
        checks=[not_a_server_error],
        timeout=15,
    )
