"""What the dashboard's browser tests share: a page that records dialogs, signing in,
submitting through the API as a client, database work off Playwright's thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
from databases import Database
from playwright.sync_api import Browser, Dialog, Page, expect

from tests.harness.stack import Stack

SHOTS = Path(__file__).resolve().parents[3] / "test-output" / "ui"
XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
T = TypeVar("T")


def new_page(browser: Browser, dialogs: list[str], **options: Any) -> Page:
    """A fresh context's page (its own cookies); every dialog it opens is recorded."""
    page = browser.new_context(**options).new_page()

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return page


def sign_in(page: Page, stack: Stack, token: str) -> None:
    page.goto(f"{stack.url}/ui/")
    expect(page.locator("input#token")).to_have_attribute("type", "password")
    page.fill("#token", token)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Jobs")


def shoot(page: Page, name: str) -> None:
    """A screenshot for a person to look at (test-output/ui/, not committed)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def api(stack: Stack, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    """The JSON API as a client calls it; the decoded answer (asserting a 2xx)."""
    answer = httpx.request(
        method,
        f"{stack.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token or stack.token}"},
    )
    assert answer.is_success, answer.text
    return answer.json() if answer.content else None


def submit(stack: Stack, body: dict[str, object]) -> str:
    """POST /v1/jobs as a client would; the new job's id."""
    job_id: str = api(stack, "POST", "/v1/jobs", body)["id"]
    return job_id


def in_thread(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` in another thread: Playwright's sync API holds this thread's event
    loop, so whatever runs one of its own (``asyncio.run``) goes elsewhere."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work, *args).result()


def sql(stack: Stack, statement: str, values: dict[str, Any]) -> None:
    """One statement on the stack's database (for state a test cannot reach otherwise)."""

    async def run() -> None:
        db = Database(stack.settings.database_url)
        await db.connect()
        try:
            await db.execute(statement, values)
        finally:
            await db.disconnect()

    in_thread(asyncio.run, run())
