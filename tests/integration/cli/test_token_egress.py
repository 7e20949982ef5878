"""``homerun token egress``: a token's own egress allow-list, inside the operator's."""

from __future__ import annotations

import dataclasses

import pytest

from tests.integration.cli.support import System, run_cli

pytestmark = pytest.mark.integration

OPERATOR = ("api.example.com:443", "*.example.org")


def _listed(system: System, token_id: str) -> str:
    listing = run_cli(system, "token", "list", database=True)
    assert listing.code == 0, listing.stderr
    return next(line for line in listing.stdout.splitlines() if line.startswith(token_id))


async def test_a_tokens_egress_is_narrowed_shown_closed_and_reset(system: System) -> None:
    # The CLI checks entries against the operator's list as its settings say.
    operator = dataclasses.replace(
        system, settings=dataclasses.replace(system.settings, egress_allow=OPERATOR)
    )
    created = run_cli(operator, "token", "create", "fetcher", database=True)
    token_id = created.stdout.splitlines()[0].removeprefix("id:").strip()
    assert "egress=" not in _listed(operator, token_id)

    narrowed = run_cli(
        operator,
        "token",
        "egress",
        token_id,
        "api.example.com:443",
        "*.cdn.example.org:443",
        database=True,
    )
    assert narrowed.code == 0, narrowed.stderr
    assert _listed(operator, token_id).endswith("egress=api.example.com:443,*.cdn.example.org:443")
    stored = await operator.db.fetch_val(
        "SELECT egress_allow FROM tokens WHERE id = :id", {"id": token_id}
    )
    assert stored == ["api.example.com:443", "*.cdn.example.org:443"]

    outside = run_cli(operator, "token", "egress", token_id, "evil.example:443", database=True)
    assert outside.code == 2
    assert "'evil.example:443' is outside the operator's allow-list" in outside.stderr
    # Refused whole: the stored list is unchanged.
    assert _listed(operator, token_id).endswith("egress=api.example.com:443,*.cdn.example.org:443")

    closed = run_cli(operator, "token", "egress", token_id, "none", database=True)
    assert closed.code == 0 and _listed(operator, token_id).endswith("egress=none")
    reset = run_cli(operator, "token", "egress", token_id, "default", database=True)
    assert reset.code == 0 and "egress=" not in _listed(operator, token_id)
    stored = await operator.db.fetch_val(
        "SELECT egress_allow FROM tokens WHERE id = :id", {"id": token_id}
    )
    assert stored is None

    missing = run_cli(
        operator, "token", "egress", "00000000-0000-4000-8000-000000000000", "none", database=True
    )
    assert missing.code == 1 and "no token" in missing.stderr
