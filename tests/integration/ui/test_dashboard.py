"""The dashboard in a real browser (Debian's chromium via Playwright) against a real stack."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Browser, Page, Response, expect

from tests.harness.stack import Stack, new_token
from tests.integration.ui.browsing import (
    XSS,
    in_thread,
    new_page,
    shoot,
    sign_in,
    sql,
    submit,
)

pytestmark = pytest.mark.integration


def _fill_task(page: Page, index: int, name: str, script: str, depends_on: str = "") -> None:
    page.fill(f"#f-t{index}-name", name)
    page.fill(f"#f-t{index}-depends_on", depends_on)
    page.fill(f"#f-t{index}-p-script", script)


def test_submit_pipeline_from_the_form_watch_it_and_xss_stays_text(
    stack: Stack, browser: Browser
) -> None:
    dialogs: list[str] = []
    page = new_page(browser, dialogs)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def on_response(r: Response) -> None:
        if r.status == 404 or r.status >= 500:
            errors.append(f"{r.status} {r.url}")

    page.on("response", on_response)
    sign_in(page, stack, stack.token)
    page.goto(f"{stack.url}/ui/submit")
    # The shape form: three shell tasks (the form then has a fieldset for each).
    page.select_option("#add-task", "shell")
    page.click("#set-tasks")
    page.select_option("#add-task", "shell")
    page.click("#set-tasks")
    expect(page.locator("fieldset.task")).to_have_count(3)
    assert page.url.endswith("/ui/submit?task=shell&task=shell&task=shell")
    # The payload fields come from the shell type's schema (script required, env a map).
    expect(page.locator("#f-t0-p-script")).to_have_attribute("required", "")
    expect(page.locator("label[for=f-t0-p-env]")).to_have_text("env")
    page.fill("#f-name", "xss pipeline")
    page.fill("#f-labels", f"x={XSS[0]}\ny={XSS[1]}")
    _fill_task(page, 0, "a", f"echo '{XSS[0]}'\necho '{XSS[1]}'\nsleep 2")
    _fill_task(page, 1, "b", "echo b", "a")
    _fill_task(page, 2, "c", "echo c", "b")
    page.click("#submit-job")
    page.wait_for_url("**/ui/jobs/*")
    status = page.locator("#job-status")
    expect(status).to_have_text("running", timeout=60_000)
    # The log line arrives over SSE, as text, without a reload.
    expect(page.locator("#logs")).to_contain_text(XSS[1], timeout=60_000)
    expect(status).to_have_text("succeeded", timeout=90_000)
    expect(page.locator("#job-live")).to_contain_text(XSS[0])
    assert errors == []
    # The graph: dagre's layout, a node per task with its status as text, edges a->b->c.
    expect(page.locator("#graph svg rect.s-succeeded")).to_have_count(3)
    expect(page.locator("#graph svg .node-status")).to_have_text(["succeeded"] * 3)
    expect(page.locator("#graph svg polyline.edge")).to_have_count(2)
    xs = [
        float(page.locator(f"#graph a[data-task={n}] rect").get_attribute("x") or "nan")
        for n in "abc"
    ]
    assert xs == sorted(xs) and len(set(xs)) == 3  # laid out in ranks, left to right
    shoot(page, "job")
    page.goto(f"{stack.url}/ui/jobs")
    expect(page.locator("tbody#job-rows")).to_contain_text(XSS[0])
    shoot(page, "jobs")
    for name in ("submit", "submit/json", "task-types", "schedules", "secrets", "system"):
        page.goto(f"{stack.url}/ui/{name}")
        shoot(page, name.replace("/", "-"))
    assert errors == []
    assert dialogs == []


def test_post_without_csrf_is_refused(stack: Stack, browser: Browser) -> None:
    page = new_page(browser, [])
    sign_in(page, stack, stack.token)
    answer = page.request.post(
        f"{stack.url}/ui/submit",
        data=json.dumps({"tasks": []}),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status == 403
    assert answer.json()["error"]["code"] == "csrf_failed"


def test_revoked_token_is_signed_out(stack: Stack, browser: Browser) -> None:
    token_id, token = in_thread(new_token, stack.settings.database_url, "to-revoke")
    page = new_page(browser, [])
    sign_in(page, stack, token)
    sql(stack, "UPDATE tokens SET revoked_at = now() WHERE id = :id", {"id": token_id})
    page.goto(f"{stack.url}/ui/jobs")
    expect(page.locator("input#token")).to_be_visible()
    expect(page.locator(".notice")).to_contain_text("session ended")


def test_cancel_a_running_job_from_its_page(stack: Stack, browser: Browser) -> None:
    page = new_page(browser, [])
    sign_in(page, stack, stack.token)
    job_id = submit(
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
    page = new_page(browser, [])
    sign_in(page, stack, stack.token)
    job_id = submit(
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
    page = new_page(browser, dialogs)
    sign_in(page, stack, stack.token)
    output = {"x": XSS[0], "y": XSS[1]}
    script = f"cat > /homerun/output.json <<'JSON'\n{json.dumps(output)}\nJSON"
    job_id = submit(
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
    page = new_page(browser, [])
    sign_in(page, stack, stack.token)
    page.goto(f"{stack.url}/ui/submit/json")
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
    assert page.url.endswith("/ui/submit/json")  # no job was made: the page stays


def test_a_tasks_artifacts_are_listed_and_downloaded_with_the_session(
    stack: Stack, browser: Browser
) -> None:
    dialogs: list[str] = []
    page = new_page(browser, dialogs)
    sign_in(page, stack, stack.token)
    name = "report <img src=x onerror=alert(1)>.txt"
    script = (
        "mkdir -p /homerun/artifacts/out && printf 'hello artifact' >"
        f" '/homerun/artifacts/out/{name}' && ln -s /etc/passwd /homerun/artifacts/passwd"
    )
    job_id = submit(
        stack, {"tasks": [{"name": "make", "type": "shell", "payload": {"script": script}}]}
    )
    page.goto(f"{stack.url}/ui/jobs/{job_id}")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=90_000)
    page.reload()
    page.click("#task-make a")
    panel = page.locator("#task-panel")
    link = panel.locator("table.artifacts a")
    expect(link).to_have_text(f"out/{name}")
    # The symlink was refused, and says so; the hostile name is text.
    expect(panel.locator("ul.refused")).to_contain_text("passwd")
    expect(panel.locator("img")).to_have_count(0)
    href = link.get_attribute("href")
    assert href is not None and href.startswith(f"/ui/jobs/{job_id}/tasks/")
    # The browser's own session fetches it (the cookie reaches /ui/ only), Range included.
    whole = page.request.get(f"{stack.url}{href}")
    assert whole.status == 200 and whole.body() == b"hello artifact"
    part = page.request.get(f"{stack.url}{href}", headers={"Range": "bytes=6-13"})
    assert part.status == 206 and part.body() == b"artifact"
    # Without a session it is the sign-in page, not the file.
    anonymous = browser.new_context().request.get(f"{stack.url}{href}", max_redirects=0)
    assert anonymous.status == 303
    assert dialogs == []
