"""The REST surface against its OpenAPI document, with generated requests (schemathesis).

Every documented operation except the server streams (which never end) gets a bounded
number of generated requests through the gateway, signed in as one trader. No answer
may be a server error (5xx), and every answer must match the document: status,
content type and body schema.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from cift.stack.gateway import OPENAPI_PATH
from tests.e2e.e2e_client import Rest, Trader, register_and_login

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 10

schema = schemathesis.openapi.from_path(OPENAPI_PATH).exclude(path_regex=r"^/cift\.")


@pytest.fixture(scope="module")
def signed_in(rest: Rest) -> Trader:
    return register_and_login(rest, "schemathesis")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    phases=[Phase.explicit, Phase.generate],
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_rest_operation_never_fails_on_the_server_and_always_matches_its_schema(
    case: Case[Any], gateway_url: str, signed_in: Trader
) -> None:
    case.call_and_validate(
        base_url=gateway_url,
        headers={"authorization": f"Bearer {signed_in.access_token}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
        timeout=15,
    )
