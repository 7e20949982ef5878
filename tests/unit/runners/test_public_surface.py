"""What the API, the CLI and the plugin suites import from the queue and the runner."""

from __future__ import annotations

import inspect

from core import queue
from runners import service, worker


def test_the_queue_surface_is_pinned() -> None:
    assert set(queue.__all__) == {
        "Delivery",
        "Empty",
        "ack",
        "add",
        "cancelled_attempts",
        "claim",
        "depth",
        "enqueue",
        "extend",
        "parse_cancel_message",
        "queued_task_ids",
        "requeue",
        "running",
        "signal_cancel",
        "wait_for_work",
    }
    assert list(inspect.signature(queue.enqueue).parameters) == ["client", "tasks"]
    assert list(inspect.signature(queue.signal_cancel).parameters) == [
        "client",
        "task_id",
        "attempt",
    ]


def test_the_runner_surface_is_pinned() -> None:
    assert set(worker.__all__) == {"LogSink", "Runner"}
    assert set(service.__all__) == {"main", "serve"}
    assert list(inspect.signature(worker.Runner.run).parameters) == ["self", "burst"]
    assert list(inspect.signature(service.main).parameters) == ["settings", "pm"]
