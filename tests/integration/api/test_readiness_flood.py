"""A flood of ``/readyz`` (unauthenticated) costs the primary one probe per second, not one
query per request (#12 item 6)."""

from __future__ import annotations

import asyncio

import pytest

from core.readiness import REUSE_SECONDS
from tests.conftest import eventually
from tests.integration.api.conftest import Api
from tests.integration.api.support import metric

pytestmark = pytest.mark.integration

FLOOD = 400


async def test_a_readyz_flood_is_answered_from_one_probe(api: Api) -> None:
    before = metric("homerun_readiness_probes_total")
    answers = await asyncio.gather(*(api.client.get("/readyz") for _ in range(FLOOD)))
    assert [a.status_code for a in answers] == [200] * FLOOD
    assert all(a.json()["primary"] == {"up": True} for a in answers)
    # However long the flood took, at most one probe per interval (and one to start).
    probes = metric("homerun_readiness_probes_total") - before
    assert probes <= 2, probes

    # It still tells the truth: a later probe sees what changed.
    before = metric("homerun_readiness_probes_total")

    async def probed_again() -> bool:
        await api.client.get("/readyz")
        return metric("homerun_readiness_probes_total") > before

    await eventually(probed_again, within=REUSE_SECONDS * 5, message="a fresh probe")
