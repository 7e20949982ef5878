"""Made-up tokens from one address are refused without a database lookup once that address
has failed too often; other addresses and valid tokens are served (#12 item 6).

The API runs as a real process (uvicorn), so the client's address is what uvicorn makes
of ``X-Forwarded-For`` from a trusted proxy (loopback here, the edge in the stack): each
test source is a different forwarded address.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx
import pytest
from databases import Database

from core.settings import Settings
from core.tokens import create_token
from tests.conftest import eventually
from tests.harness.services import ServiceProcess, Services

pytestmark = pytest.mark.integration

RATE, BURST = 2.0, 10
FLOOD = 300


@pytest.fixture
def api(settings: Settings, services: Services) -> ServiceProcess:
    return services.api(replace(settings, auth_failures_per_second=RATE, auth_failure_burst=BURST))


def get(api: ServiceProcess, source: str, token: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": source}
    return httpx.get(f"{api.url}/v1/task-types", headers=headers, timeout=10)


async def test_made_up_tokens_from_one_source_stop_costing_lookups(
    api: ServiceProcess, db: Database
) -> None:
    _, valid = await create_token(db, "legit")
    attacker, bystander = "10.0.0.66", "10.0.0.7"

    def flood() -> list[int]:
        with ThreadPoolExecutor(16) as pool:
            answers = pool.map(lambda i: get(api, attacker, f"hr_made_up_{i}"), range(FLOOD))
            return [a.status_code for a in answers]

    started = asyncio.get_running_loop().time()
    codes = await asyncio.to_thread(flood)
    elapsed = asyncio.get_running_loop().time() - started
    # Each 401 was a lookup; everything past the burst (and the trickle that refilled) is a
    # 429 that asked nothing of the database.
    looked_up = codes.count(401)
    assert set(codes) == {401, 429}, codes
    assert looked_up <= BURST + RATE * elapsed + 1, (looked_up, elapsed)
    assert codes.count(429) >= FLOOD - looked_up

    # The block lasts until one failure has refilled (half a second at RATE): if that has
    # passed since the flood's last answer, this source is looked up once more and blocked
    # again, never looked up twice in a row.
    refused = await asyncio.to_thread(get, api, attacker, "hr_still_made_up")
    if refused.status_code == 401:
        refused = await asyncio.to_thread(get, api, attacker, "hr_still_made_up")
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"]["code"] == "too_many_auth_failures", body
    assert int(refused.headers["Retry-After"]) >= 1

    # Another address is served, with or without a valid token.
    assert (await asyncio.to_thread(get, api, bystander, valid)).status_code == 200
    assert (await asyncio.to_thread(get, api, bystander, "hr_typo")).status_code == 401

    # The attacker's address is looked up again once its bucket has refilled a little.
    async def looked_up_again() -> bool:
        answer = await asyncio.to_thread(get, api, attacker, "hr_made_up_later")
        return answer.status_code == 401

    await eventually(looked_up_again, within=10, message="the address to be let back")
