"""``homerun token retention``: a token's own retention period, set and shown by the CLI."""

from __future__ import annotations

import pytest

from tests.integration.cli.support import System, run_cli

pytestmark = pytest.mark.integration


def _listed(system: System, token_id: str) -> str:
    listing = run_cli(system, "token", "list", database=True)
    assert listing.code == 0, listing.stderr
    return next(line for line in listing.stdout.splitlines() if line.startswith(token_id))


async def test_a_tokens_period_is_set_shown_and_reset(system: System) -> None:
    created = run_cli(system, "token", "create", "nightly", database=True)
    token_id = created.stdout.splitlines()[0].removeprefix("id:").strip()
    assert "retention=" not in _listed(system, token_id)

    set_ = run_cli(system, "token", "retention", token_id, "90d", database=True)
    assert set_.code == 0 and "7776000s" in set_.stdout, set_.stderr
    assert _listed(system, token_id).endswith("retention=7776000s")
    stored = await system.db.fetch_val(
        "SELECT retention_seconds FROM tokens WHERE id = :id", {"id": token_id}
    )
    assert stored == 7776000

    forever = run_cli(system, "token", "retention", token_id, "forever", database=True)
    assert forever.code == 0 and _listed(system, token_id).endswith("retention=0s")
    reset = run_cli(system, "token", "retention", token_id, "default", database=True)
    assert reset.code == 0 and "retention=" not in _listed(system, token_id)

    bad = run_cli(system, "token", "retention", token_id, "soon", database=True)
    assert bad.code == 2 and "a period is default, forever" in bad.stderr
    missing = run_cli(
        system, "token", "retention", "00000000-0000-4000-8000-000000000000", "1d", database=True
    )
    assert missing.code == 1 and "no token" in missing.stderr
