"""The API modules' public names, pinned: changing one is a deliberate act."""

from __future__ import annotations

import importlib

import pytest

SURFACE = {
    "core.app": {"ROUTE_MODULES", "create_app"},
    "core.auth": {"Principal", "authenticate", "require_token"},
    "core.consistency": {"Reads"},
    "core.cursor": {"decode_cursor", "encode_cursor"},
    "core.errors": {
        "UNAVAILABLE_ERRORS",
        "unavailable_handler",
        "ApiError",
        "Detail",
        "api_error_handler",
        "error_body",
        "error_response",
        "http_exception_handler",
        "internal_error_handler",
    },
    # The proxy's gate: what the runner signs with and Squid's helpers run.
    "core.egressgate": {"Grant", "credentials", "proxy_url", "read_key", "serve", "verify"},
    "core.jsondepth": {"MAX_JSON_DEPTH", "TOO_DEEP", "exceeds_depth", "too_deep_sql"},
    "core.limits": {
        "BodyLimitMiddleware",
        "BodyTooLarge",
        "LocalBuckets",
        "RateLimiter",
        "SourceFailures",
        "Verdict",
    },
    "core.openapi": {"RETRY_AFTER", "Document", "build_openapi"},
    "core.responses": {"ModelResponse"},
    "core.sealing": {
        "KEY_ID_PATTERN",
        "Keyring",
        "KeyringError",
        "Sealed",
        "TamperedSecret",
        "UnknownKey",
        "generate_line",
    },
    "core.server": {"serve"},
    "core.state": {"AppState", "get_state"},
    "core.tokens": {
        "TOKEN_PREFIX",
        "AdminTokenRefused",
        "TokenInfo",
        "create_token",
        "ensure_admin_token",
        "hash_token",
        "list_tokens",
        "revoke_token",
        # retention: a token's own period
        "parse_retention",
        "set_retention",
        # egress: a token's own allow-list
        "egress_allow_of",
        "narrowed_egress",
        "set_egress",
    },
    "core.validation": {
        "MAX_TASK_SECRETS",
        "SECRET_NAME_MESSAGE",
        "SECRET_NAME_PATTERN",
        "VALIDATOR_SETTINGS",
        "JobSchemas",
        "JobValidator",
        "find_cycle",
        "parse_json",
        "refuse_closed_egress",
        "request_hash",
    },
    "core.views": {
        "JOB_COLUMNS",
        "list_jobs",
        "load_attempt",
        "load_job",
        "load_task",
        "to_attempt_detail",
        "to_job",
        "to_summary",
        "to_task",
        "to_task_detail",
    },
}


@pytest.mark.parametrize("name", sorted(SURFACE))
def test_public_names(name: str) -> None:
    module = importlib.import_module(name)
    assert set(module.__all__) == SURFACE[name]
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.{attr}"
