"""Property-based fuzzing of every endpoint from our own OpenAPI schema (schemathesis),
through a real uvicorn on loopback: no 5xx, and every response as the schema says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from rag.api import create_app
from tests.api_server import running

OPERATIONS = [
    ("POST", "/v1/ask"),
    ("GET", "/v1/search"),
    ("GET", "/v1/trials"),
    ("GET", "/v1/trials/{trial_id}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
]


@pytest.fixture(scope="module")
def api_schema(seed_index_root: Path) -> Iterator[Any]:
    with running(create_app(root=seed_index_root / "index")) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_every_operation_is_fuzzed(api_schema: Any) -> None:
    found = {
        (op.method.upper(), op.path)
        for result in api_schema.get_all_operations()
        if (op := result.ok())
    }
    assert found == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_5xx_and_no_schema_violation(api_schema: Any, method: str, path: str) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        # Filter values the schema allows can still be refused with a 422 that says why
        # (phase "7" is a string but no phase), so schema-valid is not always acceptable.
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    check()
