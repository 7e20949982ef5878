"""The dashboard in a real browser (Debian's chromium via Playwright) against a real stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright

from tests.harness.stack import Stack, new_token, private_stack

pytestmark = pytest.mark.integration

SHOTS = Path(__file__).resolve().parents[3] / "test-output" / "ui"
XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with private_stack("dashboard-ui", ui_session_key="dashboard-test-key") as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        yield b
        b.close()


def _page(browser: Browser, dialogs: list[str]) -> Page:
    page = browser.new_page()

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return page


def _sign_in(page: Page, stack: Stack, token: str) -> None:
    page.goto(f"{stack.url}/ui/")
    expect(page.locator("input#token")).to_have_attribute("type", "password")
    page.fill("#token", token)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Jobs")


def test_submit_pipeline_watch_it_and_xss_stays_text(stack: Stack, browser: Browser) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []
    page = _page(browser, dialogs)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(r.url) if r.status == 404 else None)
    _sign_in(page, stack, stack.token)
    page.goto(f"{stack.url}/ui/submit")
    body = {
        # A job name the API refuses (its pattern); labels and log lines carry anything.
        "name": "xss pipeline",
        "labels": {"x": XSS[0], "y": XSS[1]},
        "tasks": [
            {
                "name": "a",
                "type": "shell",
                "payload": {"script": f"echo '{XSS[0]}'; echo '{XSS[1]}'; sleep 2"},
            },
            {"name": "b", "type": "shell", "payload": {"script": "echo b"}, "depends_on": ["a"]},
            {"name": "c", "type": "shell", "payload": {"script": "echo c"}, "depends_on": ["b"]},
        ],
    }
    page.fill("#job-body", json.dumps(body))
    page.click("form[data-submit] button[type=submit]")
    page.wait_for_url("**/ui/jobs/*")
    status = page.locator("#job-status")
    expect(status).to_have_text("running", timeout=60_000)
    # The log line arrives over SSE, as text, without a reload.
    expect(page.locator("#logs")).to_contain_text(XSS[1], timeout=60_000)
    expect(status).to_have_text("succeeded", timeout=90_000)
    expect(page.locator("#job-live")).to_contain_text(XSS[0])
    assert errors == []
    expect(page.locator("#graph svg rect.s-succeeded")).to_have_count(3)
    page.screenshot(path=str(SHOTS / "job.png"), full_page=True)
    page.goto(f"{stack.url}/ui/jobs")
    expect(page.locator("tbody#job-rows")).to_contain_text(XSS[0])
    page.screenshot(path=str(SHOTS / "jobs.png"), full_page=True)
    for name in ("submit", "task-types", "schedules", "system"):
        page.goto(f"{stack.url}/ui/{name}")
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert dialogs == []


def test_post_without_csrf_is_refused(stack: Stack, browser: Browser) -> None:
    page = _page(browser, [])
    _sign_in(page, stack, stack.token)
    answer = page.request.post(
        f"{stack.url}/ui/submit",
        data=json.dumps({"tasks": []}),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status == 403
    assert answer.json()["error"]["code"] == "csrf_failed"


def test_revoked_token_is_signed_out(stack: Stack, browser: Browser) -> None:
    # Playwright's sync API holds an event loop in this thread: database work runs in another.
    pool = ThreadPoolExecutor(1)
    token_id, token = pool.submit(new_token, stack.settings.database_url, "to-revoke").result()
    page = _page(browser, [])
    _sign_in(page, stack, token)
    admin = httpx.get(f"{stack.url}/v1/jobs", headers={"Authorization": f"Bearer {token}"})
    assert admin.status_code == 200
    import asyncio

    from databases import Database

    async def revoke() -> None:
        db = Database(stack.settings.database_url)
        await db.connect()
        try:
            await db.execute(
                "UPDATE tokens SET revoked_at = now() WHERE id = :id", {"id": token_id}
            )
        finally:
            await db.disconnect()

    pool.submit(asyncio.run, revoke()).result()
    page.goto(f"{stack.url}/ui/jobs")
    expect(page.locator("input#token")).to_be_visible()
    expect(page.locator(".notice")).to_contain_text("session ended")


def _submit(stack: Stack, body: dict[str, object]) -> str:
    """POST /v1/jobs as a client would; the new job's id."""
    answer = httpx.post(
        f"{stack.url}/v1/jobs", json=body, headers={"Authorization": f"Bearer {stack.token}"}
    )
    assert answer.status_code in (200, 201), answer.text
    job_id: str = answer.json()["id"]
    return job_id


def test_cancel_a_running_job_from_its_page(stack: Stack, browser: Browser) -> None:
    page = _page(browser, [])
    _sign_in(page, stack, stack.token)
    job_id = _submit(
        stack, {"tasks": [{"name": "long", "type": "shell", "payload": {"script": "sleep 30"}}]}
    )
    page.goto(f"{stack.url}/ui/jobs/{job_id}")
    status = page.locator("#job-status")
    expect(status).to_have_text("running", timeout=60_000)
    page.click("#cancel")
    page.wait_for_url(f"**/ui/jobs/{job_id}")
    # The job's page follows it to cancelled over SSE: no reload here.
    expect(status).to_have_text("cancelled", timeout=30_000)
    expect(page.locator("#task-long")).to_have_attribute("data-status", "cancelled")
    expect(page.locator("#cancel")).to_have_count(0)


@pytest.mark.parametrize("button", ["rerun", "rerun-failed"])
def test_rerun_a_failed_job_lands_on_the_new_job(
    stack: Stack, browser: Browser, button: str
) -> None:
    page = _page(browser, [])
    _sign_in(page, stack, stack.token)
    job_id = _submit(
        stack,
        {
            "tasks": [
                {"name": "ok", "type": "shell", "payload": {"script": "echo ok"}},
                {
                    "name": "bad",
                    "type": "shell",
                    "payload": {"script": "exit 1"},
                    "max_attempts": 1,
                    "depends_on": ["ok"],
                },
            ]
        },
    )
    page.goto(f"{stack.url}/ui/jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_text("failed", timeout=90_000)
    page.click(f"#{button}")
    page.wait_for_url(lambda url: "/ui/jobs/" in url and job_id not in url)
    new_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    assert new_id != job_id
    back = page.locator(f"a[href='/ui/jobs/{job_id}']")
    expect(back).to_have_text(job_id[:8])
    # The new job runs the failed task again and fails the same way.
    expect(page.locator("#job-status")).to_have_text("failed", timeout=90_000)
    expect(page.locator("#task-bad")).to_have_attribute("data-status", "failed")
    back.click()
    page.wait_for_url(f"**/ui/jobs/{job_id}")


def test_output_json_shows_as_text(stack: Stack, browser: Browser) -> None:
    dialogs: list[str] = []
    page = _page(browser, dialogs)
    _sign_in(page, stack, stack.token)
    output = {"x": XSS[0], "y": XSS[1]}
    script = f"cat > /homerun/output.json <<'JSON'\n{json.dumps(output)}\nJSON"
    job_id = _submit(
        stack, {"tasks": [{"name": "out", "type": "shell", "payload": {"script": script}}]}
    )
    page.goto(f"{stack.url}/ui/jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=90_000)
    page.reload()
    shown = page.locator("pre.json")
    for text in XSS:
        expect(shown).to_contain_text(json.dumps(text)[1:-1])
    expect(page.locator("#job-live img")).to_have_count(0)
    expect(page.locator("#job-live script")).to_have_count(0)
    # The task's own page shows the same output, as text too.
    page.click("#task-out a")
    panel = page.locator("#task-panel")
    expect(panel).to_contain_text("alert(1)")
    expect(panel.locator("img")).to_have_count(0)
    expect(panel.locator("script")).to_have_count(0)
    href = page.locator("#task-out a").get_attribute("href")
    assert href is not None
    page.goto(f"{stack.url}{href}")
    expect(page.locator("body")).to_contain_text("alert(1)")
    expect(page.locator("main img")).to_have_count(0)
    assert dialogs == []


def test_submit_errors_are_shown_at_the_field_they_name(stack: Stack, browser: Browser) -> None:
    page = _page(browser, [])
    _sign_in(page, stack, stack.token)
    page.goto(f"{stack.url}/ui/submit")
    body = {
        "tasks": [
            {"name": "a", "type": "shell", "payload": {"script": "true"}},
            {"name": "b", "type": "shell", "payload": {"script": "true"}, "max_attempts": 99},
        ]
    }
    page.fill("#job-body", json.dumps(body))
    page.click("form[data-submit] button[type=submit]")
    detail = page.locator("#errors .detail[data-loc='body.tasks.1.max_attempts']")
    expect(detail).to_be_visible()
    line = detail.get_attribute("data-line")
    assert line is not None
    box = page.locator("#job-body")
    lines = box.input_value().split("\n")
    # The line the error names holds that field, and the editor selects it.
    assert '"max_attempts": 99' in lines[int(line) - 1]
    selected = box.evaluate("b => b.value.slice(b.selectionStart, b.selectionEnd)")
    assert selected == '"max_attempts": 99'
    expect(box).to_have_attribute("aria-invalid", "true")
    assert page.url.endswith("/ui/submit")  # no job was made: the page stays
