"""GET /v1/matrix under schemathesis, as tests/unit/test_api_schemathesis.py does for the routes of
the default app (which has no traffic matrix): no 5xx, roles enforced, responses as documented."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.api_support import ROLE_TOKENS, auth
from tests.unit.test_api_matrix import matrix_app, two_intervals

try:
    # Ignores only for environments without it (mypy then cannot find the package).
    import schemathesis  # type: ignore[import-not-found,unused-ignore]
    from schemathesis.generation.case import Case  # type: ignore[import-not-found,unused-ignore]
    from schemathesis.specs.openapi.checks import (  # type: ignore[import-not-found,unused-ignore]
        negative_data_rejection,
        positive_data_acceptance,
    )
except ImportError:
    pytest.skip("schemathesis is not installed", allow_module_level=True)

APP = matrix_app(two_intervals())
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP).include(path="/v1/matrix")


def test_the_matrix_route_is_documented() -> None:
    operations = [result.ok() for result in SCHEMA.get_all_operations()]  # type: ignore[union-attr]
    assert {(op.method.upper(), op.path) for op in operations} == {("GET", "/v1/matrix")}


@pytest.mark.slow
@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_roles_and_robustness(case: Case[Any]) -> None:
    for role, token in ROLE_TOKENS.items():
        response = case.call(headers=auth(token))
        assert response.status_code < 500, (role, response.status_code, response.text)
        if "Authorization" not in case.as_transport_kwargs(headers=auth(token))["headers"]:
            assert response.status_code == 401, (role, response.status_code)
        elif case.method.upper() != "GET":  # schemathesis probing other methods
            assert response.status_code == 405 or role == "ap"
            assert not 200 <= response.status_code < 300
        elif role == "ap":
            assert response.status_code == 403
        else:
            case.validate_response(response, headers=auth(token),
                                   excluded_checks=[positive_data_acceptance, negative_data_rejection])
