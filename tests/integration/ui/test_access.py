"""The dashboard at phone width (no sideways scrolling, the navigation in reach) and by
keyboard alone (sign in, the jobs list, a job, a task from the graph)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from core.ui.web import CSP
from tests.harness.stack import Stack
from tests.integration.ui.browsing import api, new_page, shoot, sign_in, submit

pytestmark = pytest.mark.integration

PHONE = {"width": 390, "height": 844}


def _overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the phone (0: no sideways scroll).

    Against the device's width, not ``innerWidth``: a mobile browser zooms out to show a
    page that is too wide, and ``innerWidth`` grows with it.
    """
    width: int = page.evaluate(
        "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
    )
    return width - PHONE["width"]


def test_every_main_page_fits_a_phone_and_its_nav_is_in_reach(
    stack: Stack, browser: Browser
) -> None:
    page = new_page(browser, [], viewport=PHONE, is_mobile=True, has_touch=True)
    job_id = submit(
        stack,
        {
            "name": "a rather long job name to wrap at phone width, " * 3,
            "labels": {"team": "data-platform-and-everything-else", "env": "production"},
            "tasks": [
                {
                    "name": "first-task-with-a-long-name",
                    "type": "shell",
                    "payload": {"script": "echo " + "x" * 300},
                },
                {
                    "name": "second",
                    "type": "shell",
                    "payload": {"script": "true"},
                    "depends_on": ["first-task-with-a-long-name"],
                },
            ],
        },
    )
    schedule = api(
        stack,
        "POST",
        "/v1/schedules",
        {
            "name": "phone-width",
            "cron": "*/5 * * * *",
            "job": {"tasks": [{"name": "t", "type": "shell", "payload": {"script": "true"}}]},
            "paused": True,
        },
    )
    page.goto(f"{stack.url}/ui/")
    assert _overflow(page) <= 0, "sign-in"
    sign_in(page, stack, stack.token)
    expect(page.locator(f"#job-{job_id}")).to_be_visible()
    pages = {
        "jobs": "jobs",
        "job": f"jobs/{job_id}",
        "submit": "submit?task=shell&task=container",
        "submit-json": "submit/json",
        "schedules": "schedules",
        "schedule": f"schedules/{schedule['id']}",
        "secrets": "secrets",
        "task-types": "task-types",
        "system": "system",
    }
    wide = {}
    for shot, path in pages.items():
        answer = page.goto(f"{stack.url}/ui/{path}")
        assert answer is not None and answer.status == 200, path
        # Every page under the strict policy, and none carries a script of its own.
        assert answer.headers["content-security-policy"] == CSP, path
        expect(page.locator("script:not([src])")).to_have_count(0)
        expect(page.locator("[style]")).to_have_count(0)
        expect(page.locator("h1")).to_be_visible()
        if _overflow(page) > 0:
            wide[path] = _overflow(page)
        # Every navigation link is on screen (the bar wraps rather than scrolls away).
        for link in page.locator("header nav a").all():
            box = link.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        expect(page.locator("header nav a")).to_have_count(6)
        shoot(page, f"phone-{shot}")
    assert wide == {}
    # The measure itself sees a page that is too wide.
    page.evaluate(
        "() => { const d = document.createElement('div');"
        " d.style.width = '900px'; d.style.height = '1px'; document.body.append(d); }"
    )
    assert _overflow(page) > 0
    # A tap on the nav goes where it says.
    page.locator("header nav a", has_text="Schedules").tap()
    page.wait_for_url("**/ui/schedules")


def _focused(page: Page) -> str:
    """The focused element: its id, or its tag and text."""
    text: str = page.evaluate(
        "() => { const e = document.activeElement;"
        " return e.id || (e.tagName + ':' + (e.textContent || '').trim()); }"
    )
    return text


def _tab_to(page: Page, selector: str, most: int = 60) -> None:
    """Press Tab until the element ``selector`` names has the focus."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement === document.querySelector(s)", selector):
            return
    raise AssertionError(f"{selector} never got the focus (at {_focused(page)})")


def test_sign_in_the_jobs_list_a_job_and_a_task_by_keyboard(stack: Stack, browser: Browser) -> None:
    job_id = submit(
        stack,
        {
            "name": "keyboard",
            "tasks": [
                {"name": "one", "type": "shell", "payload": {"script": "sleep 2; echo 1"}},
                {
                    "name": "two",
                    "type": "shell",
                    "payload": {"script": "echo 2"},
                    "depends_on": ["one"],
                },
            ],
        },
    )
    page = new_page(browser, [])
    page.goto(f"{stack.url}/ui/")
    # The token field has the focus on arrival; Tab reaches the button, Enter signs in.
    assert _focused(page) == "token"
    page.keyboard.type(stack.token)
    _tab_to(page, "form.signin button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Jobs")
    # The skip link comes first, then the navigation, then the filters and the rows.
    page.keyboard.press("Tab")
    assert _focused(page).startswith("A:Skip to content")
    _tab_to(page, f"#job-{job_id} a")
    # The row updates live as the job finishes; the keyboard stays on its link.
    expect(page.locator(f"#job-{job_id}")).to_have_attribute(
        "data-status", "succeeded", timeout=60_000
    )
    assert page.evaluate(
        "s => document.activeElement === document.querySelector(s)", f"#job-{job_id} a"
    ), _focused(page)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/ui/jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=60_000)
    # The graph's nodes are in the tab order; Enter on one opens its task's panel.
    node = "#graph a.node-link[data-task=two]"
    expect(page.locator(node)).to_have_attribute("aria-label", "task two: succeeded")
    _tab_to(page, node)
    page.keyboard.press("Enter")
    panel = page.locator("#task-panel")
    expect(panel.locator("h2")).to_contain_text("Task two")
    # Its attempt and its stored output, read after the container is gone.
    expect(panel.locator("table.attempts tbody tr")).to_have_count(1)
    expect(panel.locator("pre.out").first).to_have_text("2")
    assert _focused(page) == "task-panel"
    assert page.url.endswith(f"/ui/jobs/{job_id}")  # the panel, not another page
    shoot(page, "keyboard-task")
