"""Render a job's live event stream for a terminal: status changes, progress, and task logs.

Line-oriented on purpose: it reads the same in a terminal, a CI log or a pipe, and a test
can assert on it. Every status change prints one line plus a progress line naming each
task's status; ``task.log`` events print as ``<task> | <line>``.

A map task's instances (events of tasks named ``<map>[<index>]``) are shown compactly: the
map task's line in the progress counts its instances by status; an instance prints a line
of its own only when it retries or fails, and the progress line is printed again only at
each twentieth of the instances ended, so a 10,000-item map prints some twenty lines.
"""

from __future__ import annotations

import json
import re
from collections import Counter
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
INSTANCE_NAME = re.compile(r"^(?P<map>.+)\[(?P<index>[0-9]+)\]$")
PROGRESS_STEPS = 20  # a map's progress line at each twentieth of its instances ended


class Watch:
    def __init__(self, out: TextIO, *, show_logs: bool = True) -> None:
        self.out = out
        self.show_logs = show_logs
        self.job_id: str | None = None
        self.job_status: str | None = None
        self.tasks: dict[str, dict[str, Any]] = {}  # task id -> {"name", "status"}, in job order
        # map task name -> {"count": instances made, "status": instance id -> status}
        self.maps: dict[str, dict[str, Any]] = {}
        self.instances: dict[str, str] = {}  # instance task id -> its name

    def _write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def _name(self, task_id: str | None) -> str:
        if task_id is None:
            return "?"
        if task_id in self.instances:
            return self.instances[task_id]
        return str(self.tasks.get(task_id, {}).get("name") or task_id[:8])

    def _map_counts(self, name: str) -> str:
        entry = self.maps[name]
        counts = Counter(entry["status"].values())
        done = sum(counts[s] for s in TERMINAL_TASK)
        parts = " ".join(f"{SYMBOLS[s]}{counts[s]}" for s in SYMBOLS if counts[s])
        return f"{done}/{entry['count']}" + (f" {parts}" if parts else "")

    def progress(self) -> str:
        done = sum(1 for t in self.tasks.values() if t["status"] in TERMINAL_TASK)
        parts = [
            f"{SYMBOLS.get(t['status'], '?')} {t['name']} {t['status']}"
            + (f" ({self._map_counts(t['name'])})" if t["name"] in self.maps else "")
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
        elif kind == "task.mapped":
            self._mapped(body, data)
        elif kind.startswith("task.") and self._instance(kind.removeprefix("task."), body, data):
            return
        elif kind.startswith("task."):
            self._task(kind.removeprefix("task."), body, data)
            self._write(self.progress())

    def _mapped(self, body: dict[str, Any], data: dict[str, Any]) -> None:
        task_id, name = body.get("task_id"), str(data.get("name"))
        if task_id is not None:
            entry = self.tasks.setdefault(task_id, {"name": name})
            entry["status"] = data.get("status", "running")
        self.maps[name] = {"count": int(data.get("count") or 0), "status": {}}
        cap = data.get("max_parallel")
        at_once = f", {cap} at once" if cap else ""
        self._write(f"{name}: mapped over {data.get('count')} item(s){at_once}")
        self._write(self.progress())

    def _instance(self, what: str, body: dict[str, Any], data: dict[str, Any]) -> bool:
        """Handle an instance's event compactly; False if it is not an instance's."""
        name = str(data.get("name") or "")
        match = INSTANCE_NAME.match(name)
        task_id = body.get("task_id")
        if match is None or match["map"] not in self.maps or task_id is None:
            return False
        entry = self.maps[match["map"]]
        self.instances[task_id] = name
        entry["status"][task_id] = data.get("status", what)
        if what == "retrying":
            self._write(
                f"{name}: attempt {body.get('attempt')} failed ({data.get('error')}); retrying"
            )
        elif what == "failed":
            self._write(f"{name}: failed ({data.get('error')})")
        if what in TERMINAL_TASK:
            done = sum(1 for s in entry["status"].values() if s in TERMINAL_TASK)
            step = max(1, entry["count"] // PROGRESS_STEPS)
            if done % step == 0 or done == entry["count"] or what == "failed":
                self._write(self.progress())
        return True

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
