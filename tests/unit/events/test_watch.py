"""The --watch renderer turns an event stream into progress and log lines."""

from __future__ import annotations

import io
import json
from typing import Any

from homerun import sse
from homerun.watch import Watch


def status(
    kind: str,
    seq: int,
    data: dict[str, Any],
    task_id: str | None = None,
    attempt: int | None = None,
) -> sse.Event:
    body = {
        "job_id": "job-1",
        "seq": seq,
        "type": kind,
        "task_id": task_id,
        "attempt": attempt,
        "data": data,
    }
    return sse.Event(kind, json.dumps(body), str(seq))


def log(task_id: str, line: str, stream: str = "stdout") -> sse.Event:
    body = {"job_id": "job-1", "task_id": task_id, "attempt": 1, "stream": stream, "line": line}
    return sse.Event("task.log", json.dumps(body), None)


def test_progress_and_logs() -> None:
    out = io.StringIO()
    view = Watch(out)
    tasks = [
        {"id": "t1", "name": "fetch", "type": "shell", "status": "queued"},
        {"id": "t2", "name": "build", "type": "shell", "status": "pending"},
    ]
    for event in [
        status("job.queued", 1, {"status": "queued", "tasks": tasks}),
        status("task.queued", 2, {"status": "queued", "name": "fetch"}, "t1"),
        status("job.running", 3, {"status": "running"}),
        status("task.running", 4, {"status": "running", "name": "fetch"}, "t1", 1),
        log("t1", "hello"),
        log("t1", "oops", "stderr"),
        status(
            "task.succeeded",
            5,
            {"status": "succeeded", "exit_code": 0, "output": {"n": 1}},
            "t1",
            1,
        ),
        status("task.failed", 6, {"status": "failed", "error": "exit 2"}, "t2", 1),
        status("job.failed", 7, {"status": "failed"}),
    ]:
        view.handle(event)
    assert out.getvalue().splitlines() == [
        "job job-1 queued: 2 task(s)",
        "fetch: queued",
        "  [0/2] · fetch queued · … build pending",
        "job job-1 running",
        "fetch: running (attempt 1)",
        "  [0/2] ▶ fetch running · … build pending",
        "fetch | hello",
        "fetch ! oops",
        'fetch: succeeded (exit 0) output {"n": 1}',
        "  [1/2] ✓ fetch succeeded · … build pending",
        "build: failed (exit 2)",
        "  [2/2] ✓ fetch succeeded · ✗ build failed",
        "job job-1 failed",
    ]
    assert view.job_status == "failed"


def test_logs_can_be_hidden() -> None:
    out = io.StringIO()
    view = Watch(out, show_logs=False)
    view.handle(log("t1", "hello"))
    assert out.getvalue() == ""


def test_a_map_is_shown_compactly() -> None:
    out = io.StringIO()
    view = Watch(out)
    tasks = [{"id": "m", "name": "sq", "type": "shell", "status": "queued"}]
    events = [
        status("job.queued", 1, {"status": "queued", "tasks": tasks}),
        status("task.mapped", 2, {"status": "running", "name": "sq", "count": 40}, "m"),
    ]
    seq = 3
    for i in range(40):
        name, tid = f"sq[{i}]", f"i{i}"
        events.append(status("task.running", seq, {"status": "running", "name": name}, tid, 1))
        if i == 7:
            retry = {"status": "queued", "name": name, "error": "exit 3"}
            events.append(status("task.retrying", seq + 1, retry, tid, 1))
        events.append(status("task.succeeded", seq + 2, {"status": "succeeded", "name": name}, tid))
        seq += 3
    events.append(status("task.succeeded", seq, {"status": "succeeded", "name": "sq"}, "m"))
    for event in events:
        view.handle(event)
    lines = out.getvalue().splitlines()
    assert lines[1] == "sq: mapped over 40 item(s)"
    assert "sq[7]: attempt 1 failed (exit 3); retrying" in lines
    assert not any("sq[3]" in line for line in lines)  # no line per instance that did well
    # A progress line at each twentieth: 20 of them for 40 instances, not 120 lines.
    maps = [line for line in lines if "sq running (" in line and "✓" in line]
    assert len(maps) == 20 and maps[-1].endswith("sq running (40/40 ✓40)")
    assert lines[-1].endswith("✓ sq succeeded (40/40 ✓40)")
    assert len(lines) < 30
