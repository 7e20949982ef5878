"""One attempt in a throwaway, locked-down container, through the Docker SDK.

The lock-down is the default and a task type cannot loosen it, except for network egress,
which also needs the operator's ``allow_task_network``:

- ``network_mode="none"``: loopback only. An egress task (``core/egress.py``) instead joins
  the operator's internal egress network, whose only way out is the egress proxy, with
  ``HTTP_PROXY``/``HTTPS_PROXY`` naming it, IPv6 off (no link-local route to the host), and
  the egress runtime (runsc as registered runs with ``--network=none``);
- read-only root filesystem; ``/tmp`` and ``/homerun`` are tmpfs of ``limits.tmpfs_bytes``
  each (tmpfs pages also count against the memory limit);
- every capability dropped, ``no-new-privileges``; the user is the token's own uid and gid
  (``runners/identity.py``), never root, so tokens share no per-uid kernel limit;
- seccomp: the engine's default profile less io_uring (``runners/seccomp.py``);
- pids, memory with swap equal to memory (no swap), CPU; RLIMIT_FSIZE bounds the one file
  the task can write on the host disk (``/homerun/output.json``), and a read and write
  rate on that disk bounds its I/O (``runners/blockio.py``);
- log driver ``none``: the engine stores nothing, the runner reads the attach stream and
  keeps at most ``output_limit_bytes`` per stream;
- labels tie the container to its instance, runner, job, token, task and attempt;
- the OCI runtime is runc, or gVisor's runsc where the operator chose it and the engine has
  it (``runners/runtimes.py``).

An image the engine lacks is pulled first (``runners/images.py``), from the operator's
registry when the task type names it without one; a stop during the pull ends the attempt
before any container exists.

One run, step by step (``Engine.run``): prepare the workspace, create the container (pulling
its image if need be), attach to its output, start it, wait for its exit (killing it at the
time limit or on ``Stop``), collect the bounded output, read its output file. A step that
fails ends the run there, as the matching ``RunResult`` variant (``runners/results.py``).

The engine's blocking calls run in a thread pool of the runner's own, sized for its
concurrency, so waiting containers cannot starve the rest. The container and the
attempt's workspace are removed in every path, shielded from cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests
from docker.types import LogConfig, Mount, Ulimit

from core.egress import proxy_env as egress_env
from core.settings import Settings
from plugins.tasktypes import (
    ARTIFACTS_DIR,
    HOMERUN_DIR,
    INPUTS_DIR,
    OUTPUT_FILE,
    ContainerSpec,
    NetworkPolicy,
)
from runners import (
    artifacts,
    blockio,
    capture,
    identity,
    images,
    runtimes,
    seccomp,
    secretfiles,
    workspace,
)
from runners.redaction import Redactions
from runners.results import (
    EngineFailed,
    Exited,
    RunResult,
    StartFailed,
    Stop,
    Stopped,
    TimedOut,
    exit_code,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

LABEL_INSTANCE = "homerun.instance"
LABEL_RUNNER = "homerun.runner"
LABEL_JOB = "homerun.job"
LABEL_TOKEN = "homerun.token"
LABEL_TASK = "homerun.task"
LABEL_ATTEMPT = "homerun.attempt"

# Every label a task container carries (``AttemptLabels``).
LABELS = (LABEL_INSTANCE, LABEL_RUNNER, LABEL_JOB, LABEL_TOKEN, LABEL_TASK, LABEL_ATTEMPT)

# The fixed parts of the hardened profile: ``Engine._create`` applies them, and the Docker
# API guard (guard/policy.py) checks every container create against these same values.
CAP_DROP = ("ALL",)
NO_NEW_PRIVILEGES = "no-new-privileges"
NETWORK_NONE = "none"
# The tmpfs a task may write to, and the binds it may write through; all else is read-only.
TMPFS_DIRS = ("/tmp", HOMERUN_DIR)
WRITABLE_MOUNTS = (OUTPUT_FILE, ARTIFACTS_DIR)
# The engine stores nothing of a task's output: the runner reads the attach stream.
LOG_DRIVER = "none"
# An egress task's kernel settings: no IPv6 at all (see ``_create``).
EGRESS_SYSCTLS = {"net.ipv6.conf.all.disable_ipv6": "1"}


def security_opts() -> list[str]:
    """The ``security_opt`` of every task container: no-new-privileges and the task seccomp
    profile, nothing else."""
    return [NO_NEW_PRIVILEGES, seccomp.security_opt()]


# After a kill, how long to wait for the engine to report the exit before giving up on it.
KILL_GRACE_SECONDS = 10.0
# Open files per task: plenty for a script, far below the engine's default of a million.
NOFILE_LIMIT = 1024


def instance_name(configured: str, database_url: str) -> str:
    """The instance label: as configured, else derived from the database (sans password).

    Every runner of one deployment shares a database, so they agree on the name; two
    deployments (or test suites) on one engine never do, and so never sweep each other.
    """
    if configured:
        return configured
    public = re.sub(r"//([^:/@]+):[^@]*@", r"//\1@", database_url)
    return "db-" + hashlib.sha256(public.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AttemptLabels:
    instance: str
    runner_id: str
    job_id: str
    task_id: str
    attempt: int
    token_id: str

    def as_dict(self) -> dict[str, str]:
        return {
            LABEL_INSTANCE: self.instance,
            LABEL_RUNNER: self.runner_id,
            LABEL_JOB: self.job_id,
            LABEL_TOKEN: self.token_id,
            LABEL_TASK: self.task_id,
            LABEL_ATTEMPT: str(self.attempt),
        }


def _is_start_error(exc: docker.errors.APIError) -> bool:
    text = str(exc.explanation or exc).lower()
    return "executable file not found" in text or "no such file or directory" in text


class Engine:
    """Runs attempts on one Docker engine; owns the SDK client and its thread pool.

    Made from a runner's settings with ``Engine.from_settings``.
    """

    def __init__(
        self,
        *,
        docker_url: str | None,
        concurrency: int,
        work_dir: str,
        instance: str,
        output_limit_bytes: int,
        output_file_limit_bytes: int,
        allow_network: bool,
        log_lines_per_second: float,
        image_registry: str,
        image_pull_timeout: float,
        image_registry_login: images.Login | None = None,
        disk_bytes_per_second: int,
        runtime: str,
        egress_network: str = "",
        egress_proxy_url: str = "",
        egress_runtime: str = runtimes.RUNC,
        secrets_dir: str = "/run/homerun-secrets",
        artifacts_max_files: int = 1000,
        artifacts_max_bytes: int = 100 * 1024 * 1024,
    ) -> None:
        # Each running attempt holds two connections (wait, attach) and a thread for each.
        pool = 4 * concurrency + 4
        if docker_url:
            self.client = docker.DockerClient(base_url=docker_url, max_pool_size=pool)
        else:
            self.client = docker.from_env(max_pool_size=pool)
        self._executor = ThreadPoolExecutor(max_workers=pool, thread_name_prefix="homerun-engine")
        self.work_dir = work_dir
        self.instance = instance
        self.output_limit = output_limit_bytes
        self.output_file_limit = output_file_limit_bytes
        self.allow_network = allow_network
        self.egress_network = egress_network
        self.egress_proxy_url = egress_proxy_url
        self.egress_runtime = egress_runtime
        self.log_rate = log_lines_per_second
        self.image_registry = image_registry
        self.puller = images.Puller(
            self.client, self.call, timeout=image_pull_timeout, login=image_registry_login
        )
        self.disk_limits = _disk_limits(work_dir, disk_bytes_per_second)
        self.requested_runtime = runtime
        self.secrets_dir = secrets_dir
        self.artifacts_max_files = artifacts_max_files
        self.artifacts_max_bytes = artifacts_max_bytes
        self._runtime: runtimes.Choice | None = None
        self._engine_id: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Engine:
        """The engine a runner with ``settings`` uses."""
        return cls(
            docker_url=settings.docker_url,
            concurrency=settings.runner_concurrency,
            work_dir=settings.work_dir,
            instance=instance_name(settings.instance, settings.database_url),
            output_limit_bytes=settings.output_limit_bytes,
            output_file_limit_bytes=settings.output_file_limit_bytes,
            allow_network=settings.allow_task_network,
            log_lines_per_second=settings.log_lines_per_second,
            image_registry=settings.task_image_registry,
            image_registry_login=images.Login.of(
                settings.task_image_registry,
                settings.task_image_registry_username,
                settings.task_image_registry_password,
            ),
            image_pull_timeout=settings.image_pull_timeout_seconds,
            disk_bytes_per_second=settings.task_disk_bytes_per_second,
            runtime=settings.task_runtime,
            egress_network=settings.egress_network,
            egress_proxy_url=settings.egress_proxy_url,
            egress_runtime=settings.egress_runtime,
            secrets_dir=settings.secrets_dir,
            artifacts_max_files=settings.artifacts_max_files,
            artifacts_max_bytes=settings.artifacts_max_bytes,
        )

    def close(self) -> None:
        self.puller.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    # --- one attempt --------------------------------------------------------------------

    async def run(
        self,
        spec: ContainerSpec,
        labels: AttemptLabels,
        *,
        payload: Mapping[str, Any],
        inputs: Mapping[str, Any],
        time_limit: float,
        stop: Stop,
        on_line: capture.LineSink | None = None,
        on_created: Callable[[str], Awaitable[None]] | None = None,
        secrets: Mapping[str, bytes] | None = None,
        redactions: Redactions | None = None,
        place_inputs: Callable[[Path], Awaitable[None]] | None = None,
        keep_artifacts: Callable[[artifacts.Collected], Awaitable[None]] | None = None,
        egress_proxy_url: str | None = None,
    ) -> RunResult:
        """Run ``spec`` to completion, time-out or ``stop``; always remove the container.

        ``place_inputs`` is given the attempt's inputs directory (``/homerun/inputs``) to
        fill before the container starts (upstream artifacts); ``keep_artifacts`` is given
        what a zero-exit run left under ``/homerun/artifacts`` (``runners.artifacts``),
        before the workspace is removed.

        ``secrets`` (name -> value) become files under ``/run/secrets``
        (``runners.secretfiles``); ``redactions`` is applied to the output streams before
        anything else sees them (``runners.redaction``). ``egress_proxy_url`` is the
        proxy URL an egress task gets (with its token's credential: ``core.egressgate``),
        the engine's own when None.

        Raises ``PayloadError`` (from the workspace) for a spec that places a file where
        the runner cannot; every other way the run can end is a ``RunResult`` variant.
        """
        started = time.monotonic()
        root = workspace.attempt_dir(self.work_dir, self.instance, labels.task_id, labels.attempt)
        secrets_root = None
        try:
            space = await self.call(
                workspace.prepare, root, payload=payload, inputs=inputs, files=spec.files
            )
            if secrets:
                secrets_root = secretfiles.attempt_dir(
                    self.secrets_dir, self.instance, labels.task_id, labels.attempt
                )
                try:
                    await self.call(
                        secretfiles.prepare,
                        secrets_root,
                        secrets,
                        identity.task_uid(labels.token_id),
                    )
                except secretfiles.SecretsUnavailable as exc:
                    return EngineFailed(
                        error=f"secrets cannot be placed: {exc}",
                        seconds=time.monotonic() - started,
                    )
                space = replace(space, secrets_dir=secrets_root)
            if place_inputs is not None:
                assert space.inputs_dir is not None
                await place_inputs(space.inputs_dir)
            try:
                proxy = egress_proxy_url or self.egress_proxy_url
                container = await self._create_pulling(spec, space, labels, stop, proxy)
            except _Ended as ended:
                return replace(ended.result, seconds=time.monotonic() - started)
            try:
                result = await self._run_container(
                    container,
                    space,
                    time_limit=time_limit,
                    stop=stop,
                    on_line=on_line,
                    on_created=on_created,
                    redactions=redactions,
                )
            finally:
                await _shielded(self.remove(container.id))
            if isinstance(result, Exited) and result.exit_code == 0 and not result.artifacts_error:
                result = await self._collect(result, space, keep_artifacts)
            return replace(result, seconds=time.monotonic() - started)
        finally:
            await _shielded(self.call(workspace.remove, root))
            if secrets_root is not None:
                await _shielded(self.call(secretfiles.remove, secrets_root))

    async def _collect(
        self,
        result: Exited,
        space: workspace.Workspace,
        keep: Callable[[artifacts.Collected], Awaitable[None]] | None,
    ) -> Exited:
        """Walk what the run left (after its container is gone) and hand it to ``keep``."""
        await self.call(artifacts.reclaim, space.artifacts_dir)
        try:
            collected = await self.call(
                artifacts.collect,
                space.artifacts_dir,
                max_files=self.artifacts_max_files,
                max_bytes=self.artifacts_max_bytes,
            )
        except artifacts.OverLimit as exc:
            return replace(result, artifacts_error=str(exc))
        if keep is not None and (collected.files or collected.refused):
            await keep(collected)
        return result

    async def _watch_artifacts(self, space: workspace.Workspace) -> str:
        """Return (why) once the running task's artifacts tree is over a bound."""
        while True:
            await asyncio.sleep(artifacts.WATCH_SECONDS)
            why = await self.call(
                artifacts.over_limit,
                space.artifacts_dir,
                max_files=self.artifacts_max_files,
                max_bytes=self.artifacts_max_bytes,
            )
            if why is not None:
                return why

    async def _create_pulling(
        self,
        spec: ContainerSpec,
        space: workspace.Workspace,
        labels: AttemptLabels,
        stop: Stop,
        proxy_url: str,
    ) -> Any:
        """Create the container, pulling its image first if the engine lacks it.

        Raises ``_Ended`` when there is no container to run.
        """
        image = images.qualify(spec.image, self.image_registry)
        try:
            await self.task_runtime()
            return await self._create_owned(image, spec, space, labels, proxy_url)
        except docker.errors.ImageNotFound:
            pass
        except runtimes.RuntimeUnavailable as exc:
            raise _Ended(EngineFailed(error=str(exc))) from None
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise _Ended(EngineFailed(error=f"creating the container failed: {exc}")) from None
        await self._pull(image, stop)
        try:
            return await self._create_owned(image, spec, space, labels, proxy_url)
        except docker.errors.ImageNotFound:
            failure = f"image {image} was pulled but is not on the engine any more"
        except (docker.errors.DockerException, requests.RequestException) as exc:
            failure = f"creating the container failed: {exc}"
        raise _Ended(EngineFailed(error=failure))

    async def _pull(self, image: str, stop: Stop) -> None:
        """Pull ``image`` unless ``stop`` comes first; raises ``_Ended`` when it cannot be had."""
        if not images.is_qualified(image):
            # No registry configured: an unqualified name would be looked up on Docker
            # Hub, where anyone may own the name (``homerun/...`` included).
            raise _Ended(
                EngineFailed(
                    error=f"image {image} is not on this Docker engine, and no registry to pull"
                    " it from is set (HOMERUN_TASK_IMAGE_REGISTRY)"
                )
            )
        pulling = asyncio.ensure_future(self.puller.ensure(image))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({pulling, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not pulling.done():
            # Only this attempt's wait ends; other attempts may still want the pull.
            pulling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pulling
            assert stop.reason is not None  # the stopper finished first
            raise _Ended(Stopped(reason=stop.reason))
        try:
            pulling.result()
        except images.PullError as exc:
            raise _Ended(EngineFailed(error=str(exc))) from None

    async def _create_owned(
        self,
        image: str,
        spec: ContainerSpec,
        space: workspace.Workspace,
        labels: AttemptLabels,
        proxy_url: str,
    ) -> Any:
        """Create the container; a caller cancelled meanwhile still gets it removed.

        The engine finishes a create the caller no longer waits for, and until ``run`` holds
        the container nothing would remove it: so the create is waited for, and what it
        made removed, before the cancellation goes on.
        """
        creating = asyncio.ensure_future(
            self.call(self._create, image, spec, space, labels, proxy_url)
        )
        try:
            return await asyncio.shield(creating)
        except asyncio.CancelledError:
            await asyncio.wait({creating})
            if not creating.cancelled() and creating.exception() is None:
                await _shielded(self.remove(creating.result().id))
            raise

    async def _run_container(
        self,
        container: Any,
        space: workspace.Workspace,
        *,
        time_limit: float,
        stop: Stop,
        on_line: capture.LineSink | None,
        on_created: Callable[[str], Awaitable[None]] | None,
        redactions: Redactions | None = None,
    ) -> RunResult:
        """Execute the created container; an ``Exited`` run also gets its output file."""
        # Recording the container (a Postgres write) overlaps with attaching and starting
        # it; it only has to land before the attempt is finished.
        noted = asyncio.ensure_future(on_created(container.id)) if on_created else None
        try:
            result = await self._execute(
                container,
                time_limit=time_limit,
                stop=stop,
                on_line=on_line,
                redactions=redactions,
                space=space,
            )
        finally:
            if noted is not None:
                await asyncio.wait({noted})
        if noted is not None:
            noted.result()
        if not isinstance(result, Exited):
            return result
        output_file, size = await self.call(space.read_output, self.output_file_limit)
        return replace(result, output_file=output_file, output_file_size=size)

    async def _execute(
        self,
        container: Any,
        *,
        time_limit: float,
        stop: Stop,
        on_line: capture.LineSink | None,
        redactions: Redactions | None = None,
        space: workspace.Workspace | None = None,
    ) -> RunResult:
        """Attach, start, wait for the end; every ending carries the bounded output."""
        out, err = capture.Bounded(self.output_limit), capture.Bounded(self.output_limit)
        stream: Any = None
        pump: asyncio.Future[None] | None = None
        result: RunResult | None = None
        try:
            stream = await self._attach(container)
            pump = asyncio.ensure_future(
                self.call(self._pump, stream, out, err, on_line, redactions or Redactions({}))
            )
            await self._start(container)
            result = await self._wait(container, time_limit=time_limit, stop=stop, space=space)
        except _Ended as ended:
            result = ended.result
        finally:
            if pump is not None:
                exited = result is not None and exit_code(result) is not None
                await self._end_pump(stream, pump, exited=exited)
        assert result is not None  # every step either returned it or raised _Ended with it
        return replace(
            result,
            stdout=out.text(),
            stdout_truncated=out.truncated,
            stderr=err.text(),
            stderr_truncated=err.truncated,
        )

    async def _attach(self, container: Any) -> Any:
        """The container's output stream; attached before the start so that not a byte is
        missed (the engine keeps no log).

        As with the create, a caller cancelled meanwhile does not stop the engine's thread:
        the attach is waited for and the stream it opened closed, or its socket would be
        left to the garbage collector.
        """
        attaching = asyncio.ensure_future(
            self.call(
                container.attach, stdout=True, stderr=True, stream=True, logs=False, demux=True
            )
        )
        try:
            return await asyncio.shield(attaching)
        except asyncio.CancelledError:
            await asyncio.wait({attaching})
            if not attaching.cancelled() and attaching.exception() is None:
                _close_stream(attaching.result())
            raise
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise _Ended(EngineFailed(error=f"attaching to the container failed: {exc}")) from None

    async def _start(self, container: Any) -> None:
        """Start the container; a command that cannot run is the task's fault, not ours."""
        try:
            await self.call(container.start)
        except docker.errors.APIError as exc:
            if _is_start_error(exc):
                failed: RunResult = StartFailed(
                    error=f"the command could not be started: {exc.explanation}"
                )
            else:
                failed = EngineFailed(error=f"starting the container failed: {exc}")
            raise _Ended(failed) from None
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise _Ended(EngineFailed(error=f"starting the container failed: {exc}")) from None

    async def _wait(
        self,
        container: Any,
        *,
        time_limit: float,
        stop: Stop,
        space: workspace.Workspace | None = None,
    ) -> RunResult:
        """Wait for the exit; kill the container at the time limit, when ``stop`` comes, or
        when its artifacts tree goes over a bound."""
        # The engine's wait outlives the time-out by a margin: we kill at the time-out.
        waiter = asyncio.ensure_future(
            self.call(container.wait, timeout=time_limit + KILL_GRACE_SECONDS + 30)
        )
        stopper = asyncio.ensure_future(stop.wait())
        watcher: asyncio.Future[str] | None = None
        if space is not None:
            watcher = asyncio.ensure_future(self._watch_artifacts(space))
        try:
            done, _ = await asyncio.wait(
                {waiter, stopper} | ({watcher} if watcher else set()),
                timeout=time_limit,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stopper.cancel()
            if watcher is not None:
                watcher.cancel()
        killed = waiter not in done
        reason = stop.reason if killed else None
        over = watcher.result() if watcher is not None and watcher in done else None
        if killed:
            await self._kill(container)
        status = await _exit_status(waiter)
        code = status if isinstance(status, int) else None
        if reason is not None:
            return Stopped(reason=reason, exit_code=code)
        if isinstance(status, EngineFailed):
            return status
        if over is not None:
            return Exited(exit_code=status, artifacts_error=f"{over}; killed while running")
        if killed:
            return TimedOut(exit_code=status)
        return Exited(
            exit_code=status, oom_killed=status != 0 and await self._oom_killed(container)
        )

    async def _oom_killed(self, container: Any) -> bool:
        """Whether the kernel killed the container for its memory (False if unknown)."""
        with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
            await self.call(container.reload)
            return bool(container.attrs["State"].get("OOMKilled"))
        return False

    async def _end_pump(self, stream: Any, pump: asyncio.Future[None], *, exited: bool) -> None:
        """Let the reader thread finish with what the container printed, then close."""
        # The stream ends when the container exits; closing it unblocks the reader in every
        # other path (start failed, engine gone).
        if not exited:
            _close_stream(stream)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(pump), KILL_GRACE_SECONDS)
        if not pump.done():
            _close_stream(stream)

    def _create(
        self,
        image: str,
        spec: ContainerSpec,
        space: workspace.Workspace,
        labels: AttemptLabels,
        proxy_url: str = "",
    ) -> Any:
        limits = spec.limits
        mounts = [
            Mount(path, host, type="bind", read_only=True) for path, host in space.readonly.items()
        ]
        assert space.inputs_dir is not None
        mounts.append(Mount(INPUTS_DIR, str(space.inputs_dir), type="bind", read_only=True))
        # The task's writable places on the host: its output file and its artifacts tree.
        writable = {OUTPUT_FILE: space.output_file, ARTIFACTS_DIR: space.artifacts_dir}
        assert set(writable) == set(WRITABLE_MOUNTS)
        mounts.extend(
            Mount(path, str(host), type="bind", read_only=False) for path, host in writable.items()
        )
        if space.secrets_dir is not None:
            # Only a host path shows in the container's configuration, never a value.
            mounts.append(
                Mount(
                    secretfiles.CONTAINER_DIR, str(space.secrets_dir), type="bind", read_only=True
                )
            )
        uid = identity.task_uid(labels.token_id)
        tmpfs_opts = f"size={limits.tmpfs_bytes},uid={uid},gid={uid},mode=0755"
        egress = spec.network == NetworkPolicy.EGRESS and self.allow_network
        network = self.egress_network if egress else NETWORK_NONE
        assert network, "HOMERUN_EGRESS_NETWORK is checked by Settings.from_env"
        # The file-size limit bounds output.json and each artifact on the host disk; no file
        # on the tmpfs can outgrow the tmpfs anyway, so it takes nothing from the task.
        fsize = max(limits.tmpfs_bytes, self.output_file_limit, self.artifacts_max_bytes)
        env = {"HOME": "/tmp", **spec.env}
        env.update(
            HOMERUN_JOB_ID=labels.job_id,
            HOMERUN_TASK_ID=labels.task_id,
            HOMERUN_ATTEMPT=str(labels.attempt),
        )
        extra: dict[str, Any] = {}
        if egress:
            env.update(egress_env(proxy_url or self.egress_proxy_url))
            # The internal network has no IPv6, but an interface still gets a link-local
            # address, and the host's end of a bridge too: no IPv6 at all in the task.
            extra["sysctls"] = dict(EGRESS_SYSCTLS)
        assert self._runtime is not None  # chosen before the first create
        return self.client.containers.create(
            image=image,
            runtime=self.egress_runtime if egress else self._runtime.runtime,
            command=list(spec.argv),
            # An image's entrypoint would change what argv means; the spec says it all.
            entrypoint=[],
            environment=env,
            working_dir=spec.workdir,
            name=f"homerun-{labels.task_id}-{labels.attempt}",
            labels=labels.as_dict(),
            user=f"{uid}:{uid}",
            network_mode=network,
            read_only=True,
            tmpfs=dict.fromkeys(TMPFS_DIRS, tmpfs_opts),
            mounts=mounts,
            cap_drop=list(CAP_DROP),
            security_opt=security_opts(),
            pids_limit=limits.pids,
            mem_limit=limits.memory_bytes,
            memswap_limit=limits.memory_bytes,
            nano_cpus=int(limits.cpus * 1e9),
            ulimits=[
                Ulimit(name="fsize", soft=fsize, hard=fsize),
                Ulimit(name="nofile", soft=NOFILE_LIMIT, hard=NOFILE_LIMIT),
            ],
            log_config=LogConfig(type=LOG_DRIVER),
            **self.disk_limits,
            **extra,
            stdin_open=False,
            tty=False,
        )

    def _pump(
        self,
        stream: Any,
        out: capture.Bounded,
        err: capture.Bounded,
        on_line: capture.LineSink | None,
        redactions: Redactions,
    ) -> None:
        """Read the attach stream into bounded buffers (runs in a thread).

        Each stream is redacted first, so neither the kept output nor a live line ever
        holds a secret's value (a value split across two writes included).
        """
        redactors = {"stdout": redactions.stream(), "stderr": redactions.stream()}
        kept_by = {"stdout": out, "stderr": err}
        limit = capture.RateLimit(self.log_rate)
        lines = (
            {
                "stdout": capture.Lines("stdout", on_line, limit),
                "stderr": capture.Lines("stderr", on_line, limit),
            }
            if on_line is not None
            else {}
        )
        try:
            for stdout_chunk, stderr_chunk in stream:
                for name, chunk, kept in (
                    ("stdout", stdout_chunk, out),
                    ("stderr", stderr_chunk, err),
                ):
                    if not chunk:
                        continue
                    chunk = redactors[name].feed(chunk)
                    if not chunk:
                        continue
                    if not kept.full and name in lines:
                        lines[name].add(chunk)
                    kept.add(chunk)
                if out.full and err.full:
                    # Both bounds reached: stop reading; the engine drops the rest.
                    break
        except Exception as exc:  # a closed stream ends the pump, nothing else
            log.debug("attach stream ended: %s", exc)
        finally:
            for name, redactor in redactors.items():
                rest = redactor.flush()
                if rest and not kept_by[name].full and name in lines:
                    lines[name].add(rest)
                if rest:
                    kept_by[name].add(rest)
            for splitter in lines.values():
                splitter.flush()
            _close_stream(stream)

    async def _kill(self, container: Any) -> None:
        try:
            await self.call(container.kill)
        except docker.errors.APIError as exc:
            # 409: it exited on its own meanwhile; 404: someone removed it (a sweep).
            if exc.status_code not in (404, 409):
                log.warning("killing container %s failed: %s", container.id[:12], exc)
        except (docker.errors.DockerException, requests.RequestException) as exc:
            log.warning("killing container %s failed: %s", container.id[:12], exc)

    async def remove(self, container_id: str) -> bool:
        """Force-remove a container (SIGKILL first); True once it is gone (or never was)."""
        try:
            await self.call(self.client.api.remove_container, container_id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            # 409 "removal already in progress": someone else is doing it.
            if exc.status_code != 409:
                log.warning("removing container %s failed: %s", container_id[:12], exc)
            return False
        except (docker.errors.DockerException, requests.RequestException) as exc:
            log.warning("removing container %s failed: %s", container_id[:12], exc)
            return False
        return True

    async def engine_id(self) -> str:
        """The engine's own id (``docker info``), naming where an attempt's container runs."""
        if self._engine_id is None:
            info = await self.call(self.client.info)
            self._engine_id = str(info["ID"])
        return self._engine_id

    async def task_runtime(self) -> runtimes.Choice:
        """The runtime task containers run under, chosen once from what the engine has.

        Raises ``RuntimeUnavailable`` when the operator asked for runsc and the engine has
        none: the runner does not start (``Runner.run`` asks first).
        """
        if self._runtime is None:
            info = await self.call(self.client.info)
            registered = info.get("Runtimes") or {}
            choice = runtimes.choose(self.requested_runtime, registered)
            log.info("task containers run under %s: %s", choice.runtime, choice.reason)
            if self.allow_network:
                runtimes.check_egress(self.egress_runtime, registered)
                log.info("egress task containers run under %s", self.egress_runtime)
            self._runtime = choice
        return self._runtime

    # --- leftovers ----------------------------------------------------------------------

    async def instance_containers(self) -> list[tuple[str, dict[str, str]]]:
        """(id, labels) of every container of this instance, running or not."""
        found = await self.call(
            self.client.api.containers,
            all=True,
            filters={"label": f"{LABEL_INSTANCE}={self.instance}"},
        )
        return [(str(c["Id"]), dict(c.get("Labels") or {})) for c in found]


def _disk_limits(work_dir: str, bytes_per_second: int) -> dict[str, Any]:
    """The disk I/O limits of every task container, found once; says what it chose."""
    if bytes_per_second <= 0:
        log.info("task disk I/O is not limited (HOMERUN_TASK_DISK_BYTES_PER_SECOND=0)")
        return {}
    device = blockio.work_dir_device(work_dir)
    if device.path is None:
        log.warning("task disk I/O is not limited: %s", device.reason)
        return {}
    log.info(
        "task disk I/O limited to %d bytes/s per task on %s (%s)",
        bytes_per_second,
        device.path,
        device.reason,
    )
    return blockio.container_limits(device, bytes_per_second)


def _close_stream(stream: Any) -> None:
    """Close an attach stream and the socket under it (the SDK leaves that one open)."""
    with contextlib.suppress(Exception):
        stream.close()
    with contextlib.suppress(Exception):
        stream._response.close()


class _Ended(Exception):
    """Raised by a step of ``Engine.run`` whose failure ends the run: carries how it ended."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(result)
        self.result = result


async def _exit_status(waiter: asyncio.Future[Any]) -> int | EngineFailed:
    """The exit code, once the engine reports the exit; how it failed to, if it does not."""
    try:
        status = await asyncio.wait_for(asyncio.shield(waiter), KILL_GRACE_SECONDS)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        return EngineFailed(error=f"waiting for the container failed: {exc}")
    except TimeoutError:
        return EngineFailed(error="the engine did not report the container's exit")
    return int(status["StatusCode"])


async def _shielded(cleanup: Awaitable[object]) -> None:
    """Run ``cleanup`` to the end even if the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(cleanup)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise
