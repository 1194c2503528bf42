"""Property run over /openapi.json: with every role, no 5xx and no success where the role has no access.

Responses for roles that may use an operation must also conform to the documented schema.
Needs schemathesis (``pip install schemathesis``, a dev tool not in pyproject yet); skipped without.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.api_support import ROLE_TOKENS, auth, build, make_config, make_view
from topfib.api.dashboard import FibChange
from topfib.controller.service.static_view import StaticView

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


class ViewWithChanges(StaticView):
    """Also a DashboardSource, so /v1/changes answers instead of a 501."""

    async def recent_changes(self, switch: str, n: int) -> list[FibChange]:
        return []


APP = build(config=make_config(api={"rate_limit_per_s": 1e9, "rate_limit_burst": 10**9}),
            view=ViewWithChanges(routes=make_view().routes))
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)

# Who may use what (None: public). Written out here, not read from the app, so it checks the app.
ALLOWED: dict[tuple[str, str], set[str] | None] = {
    ("POST", "/v1/requests"): {"ap", "operator"},
    ("DELETE", "/v1/requests/{ip}"): {"ap", "operator"},
    ("GET", "/v1/requests"): {"ap", "viewer", "operator"},
    ("GET", "/v1/config"): {"operator"},
    ("PUT", "/v1/config/switches/{name}"): {"operator"},
    ("GET", "/v1/pins"): {"viewer", "operator"},
    ("PUT", "/v1/pins/{prefix}"): {"operator"},
    ("DELETE", "/v1/pins/{prefix}"): {"operator"},
    ("GET", "/v1/fib"): {"viewer", "operator"},
    ("GET", "/v1/top"): {"viewer", "operator"},
    ("GET", "/v1/rib/{ip}"): {"viewer", "operator"},
    ("GET", "/v1/status"): {"viewer", "operator"},
    ("GET", "/v1/dashboard/top"): {"viewer", "operator"},
    ("GET", "/v1/dashboard/curve"): {"viewer", "operator"},
    ("GET", "/v1/changes"): {"viewer", "operator"},
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/metrics"): None,
}


def test_every_documented_operation_has_an_expectation() -> None:
    operations = [result.ok() for result in SCHEMA.get_all_operations()]  # type: ignore[union-attr]
    documented = {(op.method.upper(), op.path) for op in operations}
    assert documented == set(ALLOWED)


@pytest.mark.slow
@SCHEMA.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_roles_and_robustness(case: Case[Any]) -> None:
    allowed = ALLOWED[(case.operation.method.upper(), case.operation.path)]
    for role, token in ROLE_TOKENS.items():
        response = case.call(headers=auth(token))
        assert response.status_code < 500, (role, response.status_code, response.text)
        if "Authorization" not in case.as_transport_kwargs(headers=auth(token))["headers"]:
            # A negative case sent without the token on purpose.
            assert response.status_code == 401 or allowed is None, (role, response.status_code)
        elif case.method.upper() != case.operation.method.upper():  # schemathesis probing other methods
            assert response.status_code == 405 or (allowed is not None and role not in allowed)
            assert not 200 <= response.status_code < 300
        elif allowed is not None and role not in allowed:
            assert 400 <= response.status_code < 500, (role, response.status_code)
        else:
            # Not the data-acceptance checks: the schema cannot say "an IP address" or "default TTL
            # at most the max", and unknown query parameters are ignored, as HTTP servers do.
            case.validate_response(response, headers=auth(token),
                                   excluded_checks=[positive_data_acceptance, negative_data_rejection])
