"""The dashboard's pages for what the API has beside jobs: the submit form's errors,
schedules, secrets, map instances, task types, the system page; each shows hostile names
as text and refuses a state-changing request without the CSRF token."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.harness.stack import Stack
from tests.integration.ui.browsing import XSS, api, new_page, shoot, sign_in, sql, submit

pytestmark = pytest.mark.integration


def _no_markup(page: Page) -> None:
    """Nothing a hostile string carried became an element."""
    expect(page.locator("main img")).to_have_count(0)
    expect(page.locator("main script")).to_have_count(0)


def test_form_shows_the_apis_errors_at_their_fields_and_keeps_what_was_typed(
    stack: Stack, browser: Browser
) -> None:
    dialogs: list[str] = []
    page = new_page(browser, dialogs)
    sign_in(page, stack, stack.token)
    page.goto(f"{stack.url}/ui/submit?task=shell")
    page.fill("#f-t0-name", XSS[1])
    page.fill("#f-t0-p-script", "echo kept")
    page.fill("#f-labels", "no equals sign")
    page.click("#submit-job")
    # The form's own syntax first (a label line without =), at its field.
    expect(page.locator("#f-labels-error")).to_contain_text("name=value")
    expect(page.locator("#f-labels")).to_have_attribute("aria-invalid", "true")
    page.fill("#f-labels", "team=data")
    page.click("#submit-job")
    # Then the API's 422: its detail for body.tasks.0.name sits at the task-name field.
    error = page.locator("#f-t0-name-error")
    expect(error).to_contain_text("starting with a letter or digit")
    expect(error).to_contain_text(XSS[1])  # the API quotes the value: as text
    expect(page.locator("#f-t0-name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-t0-name")).to_have_attribute(
        "aria-describedby", re.compile(r"(^| )f-t0-name-error( |$)")
    )
    expect(page.locator("#form-errors")).to_contain_text("body.tasks.0.name")
    expect(page.locator("#f-t0-name")).to_have_value(XSS[1])
    expect(page.locator("#f-t0-p-script")).to_have_value("echo kept")
    _no_markup(page)
    # A payload field's error (the env schema refuses HOMERUN_ names) lands on that field.
    page.fill("#f-t0-name", "ok")
    page.fill("#f-t0-p-env", "HOMERUN_X=1")
    page.click("#submit-job")
    expect(page.locator("#f-t0-p-env-error")).to_be_visible()
    expect(page.locator("#f-t0-name-error")).to_have_count(0)
    # The envelope's own fields (from the API's submission schema) sit under "More options",
    # which opens by itself when one of them is what the API refused.
    page.fill("#f-t0-p-env", "")
    page.locator("#t0 details.options summary").click()
    page.fill("#f-t0-max_attempts", "999")
    page.click("#submit-job")
    expect(page.locator("#f-t0-max_attempts-error")).to_contain_text("at most")
    expect(page.locator("#t0 details.options")).to_have_attribute("open", "")
    # The same form posted twice (a double press of Submit) makes one job.
    page.fill("#f-t0-max_attempts", "2")
    fields = page.evaluate(
        "() => Object.fromEntries(new FormData(document.getElementById('job-form')))"
    )
    sent = [
        page.request.post(f"{stack.url}/ui/submit/form", form=fields, max_redirects=0)
        for _ in range(2)
    ]
    assert [r.status for r in sent] == [303, 303]
    first, again = (r.headers["location"] for r in sent)
    assert first == again and first.startswith("/ui/jobs/")
    shoot(page, "submit-errors")
    assert page.url.endswith("/ui/submit/form")
    assert dialogs == []


def test_a_schedule_its_fire_times_and_ticks_pause_resume_and_trigger(
    stack: Stack, browser: Browser
) -> None:
    dialogs: list[str] = []
    created = api(
        stack,
        "POST",
        "/v1/schedules",
        {
            "name": XSS[1],
            "cron": "0 3 1 1 *",
            "timezone": "Europe/Paris",
            "job": {"tasks": [{"name": "t", "type": "shell", "payload": {"script": "true"}}]},
        },
    )
    schedule_id = created["id"]
    # A tick the scheduler skipped (what it records when it finds the schedule paused).
    sql(
        stack,
        "INSERT INTO schedule_ticks (schedule_id, tick, outcome, reason, manual)"
        " VALUES (:s, now() - interval '1 day', 'skipped', 'paused', false)",
        {"s": schedule_id},
    )
    page = new_page(browser, dialogs)
    sign_in(page, stack, stack.token)
    page.goto(f"{stack.url}/ui/schedules")
    row = page.locator(f"#schedule-{schedule_id}")
    expect(row).to_contain_text(XSS[1])
    _no_markup(page)
    row.locator("a", has_text=XSS[1]).click()
    page.wait_for_url(f"**/ui/schedules/{schedule_id}")
    expect(page.locator("#next-fires li")).to_have_count(5)
    expect(page.locator("#next-fires time").first).to_have_attribute(
        "datetime", created["next_fire_times"][0].replace("Z", "+00:00")
    )
    skipped = page.locator("#ticks tr[data-outcome=skipped]")
    expect(skipped).to_have_count(1)
    expect(skipped).to_contain_text("paused")
    _no_markup(page)
    page.click("#pause")
    expect(page.locator("#schedule-state")).to_have_text("paused")
    assert api(stack, "GET", f"/v1/schedules/{schedule_id}")["paused"] is True
    page.click("#resume")
    expect(page.locator("#schedule-state")).to_have_text("active")
    page.click("#trigger")
    page.wait_for_url(lambda url: "/ui/jobs/" in url)
    job_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    page.goto(f"{stack.url}/ui/schedules/{schedule_id}")
    manual = page.locator("#ticks tr[data-outcome=created]")
    expect(manual).to_contain_text("(manual)")
    expect(manual.locator(f"a[href='/ui/jobs/{job_id}']")).to_have_count(1)
    shoot(page, "schedule")
    refused = page.request.post(f"{stack.url}/ui/schedules/{schedule_id}/pause")
    assert refused.status == 403
    assert api(stack, "GET", f"/v1/schedules/{schedule_id}")["paused"] is False
    assert dialogs == []


def test_secrets_names_only_set_and_delete(stack: Stack, browser: Browser) -> None:
    dialogs: list[str] = []
    page = new_page(browser, dialogs)
    sign_in(page, stack, stack.token)
    page.goto(f"{stack.url}/ui/secrets")
    value = "v4lue-never-shown"
    page.fill("#secret-name", "db-password")
    page.fill("#secret-value", value)
    page.click("#set-secret")
    page.wait_for_url("**/ui/secrets")
    expect(page.locator("#secrets tr[data-name='db-password']")).to_contain_text("k1")
    assert value not in page.content()
    assert [s["name"] for s in api(stack, "GET", "/v1/secrets")["secrets"]] == ["db-password"]
    # A hostile name is refused by the API, and its message (quoting the name) is text.
    page.fill("#secret-name", XSS[0])
    page.fill("#secret-value", value)
    page.click("#set-secret")
    expect(page.locator("#secret-name-error")).to_contain_text("alert(1)")
    expect(page.locator("#secret-name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#secret-name")).to_have_value(XSS[0])
    expect(page.locator("#secret-value")).to_have_value("")  # a value is never sent back
    assert value not in page.content()
    _no_markup(page)
    shoot(page, "secrets")
    refused = page.request.post(
        f"{stack.url}/ui/secrets",
        form={"name": "sneaky", "value": "x"},
    )
    assert refused.status == 403
    page.goto(f"{stack.url}/ui/secrets")
    page.click("#secrets tr[data-name='db-password'] button")
    page.wait_for_url("**/ui/secrets")
    expect(page.locator("#secrets tr[data-name='db-password']")).to_have_count(0)
    assert api(stack, "GET", "/v1/secrets")["secrets"] == []
    assert dialogs == []


def test_map_instances_counts_and_each_instance(stack: Stack, browser: Browser) -> None:
    page = new_page(browser, [])
    sign_in(page, stack, stack.token)
    items = [XSS[0], "two", "three"]
    job_id = submit(
        stack,
        {
            "tasks": [
                {
                    "name": "each",
                    "type": "shell",
                    "payload": {"script": "cat /homerun/inputs/_map.json"},
                    "map": {"over_items": items},
                }
            ]
        },
    )
    page.goto(f"{stack.url}/ui/jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=90_000)
    row = page.locator("#task-each")
    expect(row.locator(".map-counts")).to_contain_text("3 instances")
    expect(row.locator(".map-counts")).to_contain_text("succeeded 3")
    page.click("#instances-each")
    rows = page.locator("#instances tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#instance-0")).to_contain_text(XSS[0])
    expect(page.locator("#instance-0")).to_have_attribute("data-status", "succeeded")
    _no_markup(page)
    shoot(page, "instances")
    page.check("input[name=status][value=failed]")
    page.click("form.filters button")
    expect(page.locator("#instances tbody")).to_contain_text("No instances with that status")
    page.go_back()
    page.click("#instance-1 a")
    expect(page.locator("main h2").first).to_contain_text("each[1]")
    expect(page.locator("main")).to_contain_text('"item": "two"')


def test_task_types_with_schemas_and_the_system_page(stack: Stack, browser: Browser) -> None:
    page = new_page(browser, [])
    sign_in(page, stack, stack.token)
    page.goto(f"{stack.url}/ui/task-types")
    shell = page.locator("section", has=page.locator("h2", has_text="shell"))
    shell.locator("summary").click()
    expect(shell.locator("pre.json")).to_contain_text('"script"')
    job_id = submit(
        stack,
        {
            "name": "sys nap",
            "labels": {"x": XSS[0]},
            "tasks": [{"name": "nap", "type": "shell", "payload": {"script": "sleep 30"}}],
        },
    )
    failed_id = submit(
        stack,
        {
            "name": "sys bad",
            "tasks": [
                {"name": "bad", "type": "shell", "payload": {"script": "exit 3"}, "max_attempts": 1}
            ],
        },
    )
    page.goto(f"{stack.url}/ui/jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_text("running", timeout=60_000)
    page.goto(f"{stack.url}/ui/jobs/{failed_id}")
    expect(page.locator("#job-status")).to_have_text("failed", timeout=60_000)
    page.goto(f"{stack.url}/ui/system")
    expect(page.locator("#replica")).to_contain_text("fallbacks")
    expect(page.locator("#queue-depth")).to_contain_text("ready")
    runner = page.locator(f"#runners li:has(a[href='/ui/jobs/{job_id}'])")
    expect(runner).to_contain_text("nap")
    expect(runner).to_contain_text("sys nap")
    expect(page.locator(f"#failures a[href='/ui/jobs/{failed_id}']")).to_have_text("sys bad")
    _no_markup(page)
    shoot(page, "system")
    api(stack, "POST", f"/v1/jobs/{job_id}/cancel")


def test_jobs_filters_and_paging_are_the_address(stack: Stack, browser: Browser) -> None:
    batch = uuid.uuid4().hex[:12]
    quiet = {"type": "shell", "payload": {"script": "true"}}
    ids = [
        submit(stack, {"name": f"filter-{n}", "labels": {"batch": batch}, "tasks": [quiet]})
        for n in range(3)
    ]
    schedule = api(
        stack,
        "POST",
        "/v1/schedules",
        {"name": f"filter-{batch}", "cron": "0 3 1 1 *", "job": {"tasks": [quiet]}},
    )
    fired = api(stack, "POST", f"/v1/schedules/{schedule['id']}/trigger")
    page = new_page(browser, [])
    sign_in(page, stack, stack.token)
    page.fill("input[name=label]", f"batch:{batch}")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(f"**/ui/jobs?label=batch%3A{batch}")
    rows = page.locator("tbody#job-rows tr[id^=job-]")
    expect(rows).to_have_count(3)
    page.fill("input[name=name]", "filter-1")
    page.click("form.filters button[type=submit]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_id(f"job-{ids[1]}")
    # Paging: two a page, newest first, "Older" and back to "Newest".
    page.goto(f"{stack.url}/ui/jobs?label=batch:{batch}&limit=2")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_id(f"job-{ids[2]}")
    page.click("a[rel=next]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_id(f"job-{ids[0]}")
    page.click("text=Newest")
    expect(rows).to_have_count(2)
    # The schedule filter: the jobs that schedule made.
    page.goto(f"{stack.url}/ui/jobs")
    page.select_option("select[name=schedule]", schedule["id"])
    page.click("form.filters button[type=submit]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_id(f"job-{fired['id']}")
    page.goto(f"{stack.url}/ui/jobs?status=succeeded&status=failed&label=batch:{batch}")
    expect(page.locator("input[name=status][value=succeeded]")).to_be_checked()
    expect(page.locator("input[name=status][value=queued]")).not_to_be_checked()
