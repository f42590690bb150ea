"""Schemathesis against the OpenAPI document a real server serves, on each deployment.

Every operation in `/openapi.json` gets MAX_EXAMPLES generated requests with valid data and
MAX_EXAMPLES with invalid data, both sent with an admin token, and MAX_EXAMPLES valid ones
without a token. No response may be a 5xx, and each must use a documented status code and
content type and match the schema documented for it.

NOTE: schemathesis 4.32.5's pytest integration (`schemathesis.pytest.from_fixture`) fails
under pytest 9.2 (it reads `Function._nodeid`, which pytest 9 no longer has), so this test
drives schemathesis's strategies with Hypothesis directly.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support.server import ServerProcess

MAX_EXAMPLES = 30
"""Requests per operation and generation mode: enough to reach the documented error
statuses, few enough for CI."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXPECTED_OPERATIONS = {
    "GET /api/stats",
    "GET /api/events",
    "POST /api/events",
    "POST /api/event",
    "POST /api/send",
    "POST /api/batch",
    "POST /api/collect",
    "GET /api/tokens",
    "POST /api/admin/erasures",
}


@pytest.mark.parametrize(
    ("mode", "authenticated"),
    [
        (GenerationMode.POSITIVE, True),
        (GenerationMode.NEGATIVE, True),
        (GenerationMode.POSITIVE, False),
    ],
    ids=["valid-data", "invalid-data", "no-token"],
)
def test_api_matches_openapi(
    server: ServerProcess, mode: GenerationMode, authenticated: bool
) -> None:
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]

    assert {operation.label for operation in operations} == EXPECTED_OPERATIONS

    headers = server.auth_headers if authenticated else {}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def call_operation(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=server.base_url, headers=headers, checks=CHECKS)

        call_operation()
