"""The API's counters, registered on the shared Prometheus registry."""

from __future__ import annotations

from topfib.collector.common.metrics import REGISTRY

HTTP_RESPONSES = REGISTRY.counter(
    "topfib_api_http_responses_total", "HTTP responses by method, route template and status code",
    ("method", "route", "code"),
)
REQUEST_RESULTS = REGISTRY.counter(
    "topfib_api_request_results_total", "On-demand request answers (per IP and switch) by status",
    ("status",),
)
RATE_LIMITED = REGISTRY.counter(
    "topfib_api_rate_limited_total", "Calls refused with 429 by client token name", ("client",),
)
AUTH_FAILURES = REGISTRY.counter(
    "topfib_api_auth_failures_total", "Calls refused for authentication (401) or role (403)", ("reason",),
)
STORE_UNAVAILABLE = REGISTRY.counter(
    "topfib_api_store_unavailable_total", "Calls answered 503 because the state store was unreachable",
)
INTERNAL_ERRORS = REGISTRY.counter(
    "topfib_api_internal_errors_total", "Unhandled exceptions answered with a generic 500",
)
CONNECTIONS_OPEN = REGISTRY.gauge(
    "topfib_api_connections_open", "API connections open now (api.max_connections bounds it)",
)
CONNECTIONS_DROPPED = REGISTRY.counter(
    "topfib_api_connections_dropped_total",
    "API connections closed by the server: request_timeout (no complete request within "
    "api.request_read_timeout_s), tls_handshake (failed or too slow, plain HTTP included), "
    "head_too_large (request line and headers over 64 KiB, answered 431), max_connections_per_client "
    "(reset: that client already had api.max_connections_per_client open), pipeline_too_deep "
    "(over 32 pipelined requests queued)", ("reason",),
)
ACCEPT_PAUSES = REGISTRY.counter(
    "topfib_api_accept_pauses_total",
    "Times the API stopped accepting: max_connections (all taken) or the accept error (EMFILE, ...)",
    ("reason",),
)
TLS_RELOADS = REGISTRY.counter(
    "topfib_api_tls_reloads_total", "API certificate reloads on SIGHUP by result (ok, failed)", ("result",),
)
