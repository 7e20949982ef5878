"""Render a job's live event stream for a terminal: status changes, progress, and task logs.

Line-oriented on purpose: it reads the same in a terminal, a CI log or a pipe, and a test
can assert on it. Every status change prints one line plus a progress line naming each
task's status; ``task.log`` events print as ``<task> | <line>``.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from homerun import sse

__all__ = ["Watch"]

TERMINAL_TASK = frozenset({"succeeded", "failed", "cancelled"})
SYMBOLS = {
    "pending": "…",
    "queued": "·",
    "running": "▶",
    "succeeded": "✓",
    "failed": "✗",
    "cancelled": "⊘",
}


class Watch:
    def __init__(self, out: TextIO, *, show_logs: bool = True) -> None:
        self.out = out
        self.show_logs = show_logs
        self.job_id: str | None = None
        self.job_status: str | None = None
        self.tasks: dict[str, dict[str, Any]] = {}  # task id -> {"name", "status"}, in job order

    def _write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def _name(self, task_id: str | None) -> str:
        if task_id is None:
            return "?"
        return str(self.tasks.get(task_id, {}).get("name") or task_id[:8])

    def progress(self) -> str:
        done = sum(1 for t in self.tasks.values() if t["status"] in TERMINAL_TASK)
        parts = [
            f"{SYMBOLS.get(t['status'], '?')} {t['name']} {t['status']}"
            for t in self.tasks.values()
        ]
        return f"  [{done}/{len(self.tasks)}] " + " · ".join(parts)

    def handle(self, event: sse.Event) -> None:
        if event.event == "task.log":
            if self.show_logs:
                self._log(event.json())
            return
        body = event.json()
        kind = event.event
        data: dict[str, Any] = body.get("data") or {}
        self.job_id = self.job_id or body.get("job_id")
        if kind == "job.queued":
            self.job_status = "queued"
            for task in data.get("tasks", []):
                self.tasks[task["id"]] = {"name": task["name"], "status": task["status"]}
            self._write(f"job {self.job_id} queued: {len(self.tasks)} task(s)")
        elif kind.startswith("job."):
            self.job_status = data.get("status", kind.removeprefix("job."))
            self._write(f"job {self.job_id} {self.job_status}")
        elif kind.startswith("task."):
            self._task(kind.removeprefix("task."), body, data)
            self._write(self.progress())

    def _task(self, what: str, body: dict[str, Any], data: dict[str, Any]) -> None:
        task_id = body.get("task_id")
        if task_id is not None:
            entry = self.tasks.setdefault(task_id, {"name": data.get("name") or task_id[:8]})
            entry["status"] = data.get("status", what)
        name = self._name(task_id)
        attempt = body.get("attempt")
        if what == "running":
            self._write(f"{name}: running (attempt {attempt})")
        elif what == "succeeded":
            self._write(
                f"{name}: succeeded (exit {data.get('exit_code')})"
                + (f" output {json.dumps(data['output'])}" if data.get("output") else "")
            )
        elif what == "retrying":
            self._write(f"{name}: attempt {attempt} failed ({data.get('error')}); retrying")
        elif what == "failed":
            self._write(f"{name}: failed ({data.get('error')})")
        elif what == "cancelled":
            self._write(f"{name}: cancelled ({data.get('reason', 'cancelled')})")
        else:
            self._write(f"{name}: {what}")

    def _log(self, body: dict[str, Any]) -> None:
        name = self._name(body.get("task_id"))
        marker = "!" if body.get("stream") == "stderr" else "|"
        self._write(f"{name} {marker} {body.get('line', '')}")
