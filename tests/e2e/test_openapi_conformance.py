"""Schemathesis against the local stack: no 5xx, and every answer matches the document
(status documented, content type, body schema, required headers).

Bounded for a small machine: a few examples per operation, explicit and generated phases
only. Webhook URLs are pinned to one address of a documentation range (refused without a
DNS lookup), so no generated host name is ever resolved.
"""

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.e2e

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
UNRESOLVED_WEBHOOK_URL = "https://203.0.113.7/hook"


@pytest.fixture(scope="session")
def stack_device_key(stack) -> str:
    """A device of the dev account, registered with the operator tool."""
    output = stack.operator("devices", "create", "--name", "schemathesis")
    return output.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def served_document(stack):
    document = stack.get("/openapi.json", key=None).json()
    url = document["paths"]["/webhook"]["put"]["requestBody"]["content"]["application/json"]
    url["schema"] = {
        **url["schema"],
        "properties": {**url["schema"]["properties"], "url": {"const": UNRESOLVED_WEBHOOK_URL}},
    }
    return schemathesis.openapi.from_dict(document)


def check_operation(operation, stack, device_key):
    """Generate a few cases for one operation and validate each answer (raises on a failure)."""
    credentials = (
        {"X-Device-Key": device_key}
        if re.match("/device/", operation.path)
        else {"X-API-Key": stack.key}
    )

    @given(case=operation.as_strategy())
    @settings(
        max_examples=12,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        case.call_and_validate(base_url=stack.url, headers=credentials, checks=CHECKS, timeout=30)

    check()


# One test walking every operation: schemathesis' own pytest plugin does not load on pytest 9.
def test_every_answer_matches_the_document(served_document, stack, stack_device_key):
    failures = []
    for result in served_document.get_all_operations():
        operation = result.ok()
        try:
            check_operation(operation, stack, stack_device_key)
        except Exception as failure:  # noqa: BLE001 - collect every operation's failure
            failures.append(f"{operation.label}: {str(failure)[:1500]}")
    assert not failures, "\n\n".join(failures)
