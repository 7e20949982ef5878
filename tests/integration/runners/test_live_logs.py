"""Live log lines outlast a streams-Redis outage: held by the runner, sent once it answers."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from core import keys
from core.logstream import LogLine, publish_logs
from runners.worker import Runner
from tests.conftest import RedisServer, eventually
from tests.integration.runners.conftest import Jobs, shell

pytestmark = pytest.mark.integration

LINES = 30


async def stream_lines(streams: aioredis.Redis, job_id: str) -> list[str]:
    entries: Any = await streams.xrange(keys.log_stream(job_id))
    return [fields[b"line"].decode() for _, fields in entries]


async def test_lines_printed_while_the_streams_redis_hangs_arrive_once_in_order(
    jobs: Jobs,
    start_runner: Callable[..., Runner],
    events_redis_server: RedisServer,
    events_redis_url: str,
) -> None:
    # The task prints for about 3 s; the streams Redis stops answering (SIGSTOP: sockets
    # accept, nothing replies, so sends time out and may still run later) right after
    # the first line arrives, and stays stopped until the task has finished.
    created = await jobs.submit(
        shell("talk", f'for i in $(seq 1 {LINES}); do echo "line-$i"; sleep 0.1; done')
    )
    streams = aioredis.Redis.from_url(events_redis_url)
    assert events_redis_server.proc is not None
    pid = events_redis_server.proc.pid
    try:
        start_runner()
        await eventually(lambda: stream_lines(streams, created.job_id), 30, "the first live line")
        os.kill(pid, signal.SIGSTOP)
        try:
            await eventually(lambda: jobs.finished(created.job_id), 30, "the job to finish")
        finally:
            os.kill(pid, signal.SIGCONT)
        assert await jobs.job_status(created.job_id) == "succeeded"

        async def all_arrived() -> bool:
            return len(await stream_lines(streams, created.job_id)) >= LINES

        await eventually(all_arrived, 30, "the held lines to arrive")
        assert await stream_lines(streams, created.job_id) == [
            f"line-{i}" for i in range(1, LINES + 1)
        ]
    finally:
        await streams.aclose()


async def test_a_resent_batch_doubles_nothing(events_redis_url: str) -> None:
    streams = aioredis.Redis.from_url(events_redis_url)
    try:
        first = [LogLine(1, "stdout", "a"), LogLine(2, "stderr", "b")]
        assert await publish_logs(streams, "job", "task", 1, first) == 2
        # The answer to that call was lost: the publisher sends it again with one more line.
        again = [*first, LogLine(3, "stdout", "c")]
        assert await publish_logs(streams, "job", "task", 1, again) == 1
        # Another attempt of the same task numbers its lines from 1 again.
        assert await publish_logs(streams, "job", "task", 2, [LogLine(1, "stdout", "d")]) == 1
        assert await stream_lines(streams, "job") == ["a", "b", "c", "d"]
        assert (
            0 < await streams.ttl(keys.log_seqs("job")) <= await streams.ttl(keys.log_stream("job"))
        )
    finally:
        await streams.aclose()
